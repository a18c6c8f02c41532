"""``sampling="workers"``: each worker samples with its own copy of the study's sampler.

What a user relies on: the driver still decides everything else (exactly ``n_trials``
trials, numbering, enqueued trials, pruning by the driver's pruner, failures), workers do not
draw the same sequence, each worker's sampler sees the others' running trials (TPE's constant
liar), and samplers that must stay central are refused with a message that says what to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark.ablation import LOCOSampler
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests import _workers as w
from tests._helpers import Workers

OpenRun = Callable[..., StudyRun]


class CountingSampler(optuna.samplers.RandomSampler):
    """Counts the suggestions this very instance made (a copy counts on its own)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.n_sampled = 0

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self.n_sampled += 1
        return super().sample_independent(study, trial, param_name, param_distribution)


def _study(
    server: StudyServer,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    return optuna.create_study(
        storage=server.storage, sampler=sampler, pruner=pruner or optuna.pruners.NopPruner()
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sampling", ["driver", "workers"])
def test_sampling_runs_where_it_is_placed(
    server: StudyServer, open_run: OpenRun, workers: Workers, sampling: str
) -> None:
    sampler = CountingSampler(seed=0)
    run = open_run(_study(server, sampler), n_trials=12, sampling=sampling)
    workers.start(run.worker_spec(server.endpoint), w.objective_basic, 3)

    assert run.wait(30)
    workers.join()

    trials = run.study.trials
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(set(t.params) == {"x", "y"} for t in trials)
    # Two suggestions per trial, made by the driver's own sampler only when it samples.
    assert sampler.n_sampled == (24 if sampling == "driver" else 0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_workers_sampling_runs_exactly_n_trials(
    server: StudyServer, open_run: OpenRun, workers: Workers, mode: str
) -> None:
    study = _study(server, optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    run = open_run(study, n_trials=20, sampling="workers")
    workers.start(run.worker_spec(server.endpoint), w.objective_basic, 4, mode)

    assert run.wait(45)
    workers.join()

    trials = run.study.trials
    assert sorted(t.number for t in trials) == list(range(20))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value == t.params["x"] ** 2 + t.params["y"] for t in trials)
    assert all(list(t.intermediate_values) == [0, 1, 2] for t in trials)


@pytest.mark.timeout(60)
def test_each_worker_draws_its_own_sequence(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    # Copies of one seeded sampler would all draw the same first value; reseeded, they do not.
    barrier = threading.Barrier(4, timeout=20)

    def objective(trial: Any) -> float:
        barrier.wait()  # every worker holds one trial: none of them takes a second one
        return float(trial.suggest_float("x", 0, 1))

    run = open_run(
        _study(server, optuna.samplers.RandomSampler(seed=0)), n_trials=4, sampling="workers"
    )
    workers.start(run.worker_spec(server.endpoint), objective, 4)
    assert run.wait(30)
    workers.join()

    assert len({t.params["x"] for t in run.study.trials}) == 4


_SEEN_RUNNING: list[set[int]] = []


class RunningTrialsSampler(optuna.samplers.RandomSampler):
    """Records which other trials were running when it sampled (as a constant liar reads)."""

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        running = study._get_trials(deepcopy=False, states=(TrialState.RUNNING,), use_cache=True)
        _SEEN_RUNNING.append({t.number for t in running} - {trial.number})
        return super().sample_independent(study, trial, param_name, param_distribution)


@pytest.mark.timeout(60)
def test_a_workers_sampler_sees_the_other_workers_running_trials(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    _SEEN_RUNNING.clear()
    barrier = threading.Barrier(3, timeout=20)

    def objective(trial: Any) -> float:
        barrier.wait()  # all three trials are running before any of them samples
        x = float(trial.suggest_float("x", 0, 1))
        barrier.wait()  # and still running until all of them have sampled
        return x

    run = open_run(_study(server, RunningTrialsSampler()), n_trials=3, sampling="workers")
    workers.start(run.worker_spec(server.endpoint), objective, 3)
    assert run.wait(30)
    workers.join()

    assert sorted(map(sorted, _SEEN_RUNNING)) == [[0, 1], [0, 2], [1, 2]]


@pytest.mark.timeout(60)
def test_enqueued_trials_keep_their_parameters(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    study = _study(server, optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 0.25, "y": 3})
    study.enqueue_trial({"x": -0.5})
    run = open_run(study, n_trials=6, sampling="workers")
    workers.start(run.worker_spec(server.endpoint), w.objective_basic, 2)
    assert run.wait(30)
    workers.join()

    by_number = {t.number: t for t in run.study.trials}
    assert len(by_number) == 6
    assert by_number[0].params == {"x": 0.25, "y": 3}
    assert by_number[1].params["x"] == -0.5


class CountingPruner(optuna.pruners.BasePruner):
    """Prunes at step 1 every trial whose first report is above 0; counts its decisions."""

    def __init__(self) -> None:
        self.n_asked = 0

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        self.n_asked += 1
        return trial.last_step == 1 and trial.intermediate_values[0] > 0


@pytest.mark.timeout(60)
def test_pruning_stays_on_the_driver(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    pruner = CountingPruner()
    study = _study(server, optuna.samplers.RandomSampler(seed=0), pruner=pruner)
    run = open_run(study, n_trials=16, sampling="workers")
    workers.start(run.worker_spec(server.endpoint), w.objective_pruned_if_positive, 4)
    assert run.wait(30)
    workers.join()

    trials = run.study.trials
    assert len(trials) == 16
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete  # seeded: both kinds occur
    assert all(t.params["x"] > 0 for t in pruned)
    assert all(t.params["x"] <= 0 for t in complete)
    # Every should_prune was answered by the driver's pruner (workers' copies never prune).
    assert pruner.n_asked == sum(len(t.intermediate_values) for t in trials)


class BrokenSampler(optuna.samplers.RandomSampler):
    def sample_independent(self, *args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("the sampler broke")


@pytest.mark.timeout(60)
def test_a_failing_worker_sampler_stops_the_run_with_its_error(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    run = open_run(_study(server, BrokenSampler()), n_trials=8, sampling="workers")
    workers.start(run.worker_spec(server.endpoint), w.objective_basic, 2)
    assert run.wait(30)
    workers.join()

    assert isinstance(run.error, ZeroDivisionError)
    assert "the sampler broke" in str(run.error)
    assert all(t.state == TrialState.FAIL for t in run.study.trials)


@pytest.mark.parametrize(
    "sampler",
    [
        optuna.samplers.GridSampler({"x": [0.0, 1.0]}),
        optuna.samplers.BruteForceSampler(),
        LOCOSampler(features=["a", "b"]),
    ],
    ids=["grid", "brute-force", "loco"],
)
def test_samplers_that_must_stay_central_are_refused(
    server: StudyServer, sampler: optuna.samplers.BaseSampler
) -> None:
    study = _study(server, sampler)
    with pytest.raises(ValueError, match=type(sampler).__name__) as info:
        StudyRun(study, n_trials=4, sampling="workers")
    assert "sampling='driver'" in str(info.value)
    assert study.trials == []  # nothing was started
    StudyRun(study, n_trials=4, sampling="driver").stop()  # the default keeps working


def test_an_unknown_placement_is_refused(server: StudyServer) -> None:
    with pytest.raises(ValueError, match=r"'driver' or 'workers'.*'executors'"):
        StudyRun(_study(server, optuna.samplers.RandomSampler()), sampling="executors")  # type: ignore[arg-type]


def test_driver_sampling_ships_no_sampler(server: StudyServer, open_run: OpenRun) -> None:
    study = _study(server, optuna.samplers.TPESampler())
    assert open_run(study).worker_spec(server.endpoint).sampler is None
    spec = open_run(study, sampling="workers").worker_spec(server.endpoint)
    assert spec.sampler is study.sampler
    assert spec.pruner is study.pruner
