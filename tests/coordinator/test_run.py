"""The driver's trial service: one study served to worker threads and worker processes.

What a user relies on: exactly ``n_trials`` trials, each sampler decision made once on the
driver, the objective never running in the driver, and Optuna's failure semantics (catch,
uncaught errors, pruning, NaN/None) across the wire.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark._coordinator import ATTR_FAIL_REASON
from optuna_spark._coordinator import ATTR_TRACEBACK
from optuna_spark._coordinator import ATTR_WORKER
from optuna_spark._coordinator import StopReason
from optuna_spark._coordinator._state import Changes
from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import RunConfig
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.wire import RemoteTraceback
from tests import _workers as w
from tests._helpers import Workers
from tests._helpers import wait_until

OpenRun = Callable[..., StudyRun]
MODES_AND_SIZES = [
    pytest.param(mode, n, id=f"{n}-{mode}") for mode in ("thread", "process") for n in (2, 4)
]


def _spec(server: StudyServer, run: StudyRun, **kwargs: Any) -> WorkerSpec:
    return WorkerSpec(server.endpoint, run.run_id, **kwargs)


def _by_state(trials: list[FrozenTrial]) -> dict[TrialState, list[int]]:
    out: dict[TrialState, list[int]] = {}
    for t in trials:
        out.setdefault(t.state, []).append(t.number)
    return out


def _assert_ran_in_workers(trials: list[FrozenTrial], workers: Workers, mode: str) -> None:
    """Every objective ran in one of the workers, never in the driver process."""
    for t in trials:
        if mode == "process":
            assert t.user_attrs["pid"] != os.getpid()
            assert t.user_attrs["pid"] in workers.pids
        else:
            assert t.user_attrs["thread"] in workers.names


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "n_workers"), MODES_AND_SIZES)
def test_runs_exactly_n_trials(
    server: StudyServer, open_run: OpenRun, workers: Workers, mode: str, n_workers: int
) -> None:
    n_trials = 6 * n_workers
    run = open_run(n_trials=n_trials)
    workers.start(_spec(server, run), w.objective_basic, n_workers, mode)

    assert run.wait(30)
    workers.join()

    trials = run.study.trials
    assert len(trials) == n_trials
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value == t.params["x"] ** 2 + t.params["y"] for t in trials)
    assert all(list(t.intermediate_values) == [0, 1, 2] for t in trials)
    assert all(t.system_attrs[ATTR_WORKER]["pid"] == t.user_attrs["pid"] for t in trials)
    _assert_ran_in_workers(trials, workers, mode)
    assert run.stop_reason == StopReason.N_TRIALS
    assert run.error is None
    assert run.n_started == run.n_finished == n_trials
    assert run.n_running == 0
    if mode == "thread":
        assert sum(workers.results.values()) == n_trials
    else:
        assert workers.exitcodes == [0] * n_workers


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "n_workers"), MODES_AND_SIZES)
def test_grid_sampler_gives_each_point_once_and_ends_the_run(
    server: StudyServer, open_run: OpenRun, workers: Workers, mode: str, n_workers: int
) -> None:
    study = optuna.create_study(
        storage=server.storage, sampler=optuna.samplers.GridSampler(w.GRID, seed=0)
    )
    run = open_run(study, n_trials=None)
    workers.start(_spec(server, run), w.objective_grid, n_workers, mode)

    assert run.wait(30), "the run did not end by itself once the grid was exhausted"
    workers.join()

    trials = study.trials
    points = [(t.params["x"], t.params["c"]) for t in trials]
    assert sorted(points) == sorted(itertools.product(w.GRID_X, w.GRID_C))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    _assert_ran_in_workers(trials, workers, mode)
    assert run.stop_reason in (StopReason.EXHAUSTED, StopReason.STUDY)
    assert run.error is None


@pytest.mark.timeout(30)
def test_caught_exception_fails_only_its_trial(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    run = open_run(n_trials=9)
    workers.start(_spec(server, run), w.objective_flaky, 2, catch=(w.FlakyError,))

    assert run.wait(20)
    workers.join()

    trials = run.study.trials
    assert len(trials) == 9
    assert _by_state(trials) == {
        TrialState.FAIL: [0, 3, 6],
        TrialState.COMPLETE: [1, 2, 4, 5, 7, 8],
    }
    for number in (0, 3, 6):
        attrs = trials[number].system_attrs
        assert attrs[ATTR_FAIL_REASON] == f"tests._workers.FlakyError: flaky trial {number}"
        assert "Traceback" in attrs[ATTR_TRACEBACK]
        assert "objective_flaky" in attrs[ATTR_TRACEBACK]
    assert run.error is None
    assert run.stop_reason == StopReason.N_TRIALS


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_uncaught_exception_stops_the_run_and_is_raised_on_the_driver(
    server: StudyServer, open_run: OpenRun, workers: Workers, mode: str
) -> None:
    run = open_run(n_trials=200)
    workers.start(_spec(server, run), w.objective_uncaught, 2, mode)

    assert run.wait(30)
    workers.join()

    assert type(run.error) is ValueError
    assert str(run.error) == "boom from the objective"
    cause = run.error.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "objective_uncaught" in cause.tb and "boom from the objective" in cause.tb
    assert run.stop_reason == StopReason.ERROR

    trials = run.study.trials
    assert trials[3].state == TrialState.FAIL
    assert "boom from the objective" in trials[3].system_attrs[ATTR_FAIL_REASON]
    assert len(trials) < 200, "the run went on after an uncaught exception"
    assert not any(t.state == TrialState.RUNNING for t in trials)
    if mode == "process":
        assert workers.exitcodes == [0, 0]
    else:
        assert all(isinstance(r, int) for r in workers.results.values())


@pytest.mark.timeout(30)
def test_pruning_is_decided_by_the_drivers_pruner(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    study = optuna.create_study(
        storage=server.storage,
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=optuna.pruners.ThresholdPruner(upper=5.0),
    )

    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 10)
        trial.report(x, 0)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return x

    run = open_run(study, n_trials=20)
    workers.start(_spec(server, run), objective, 2)
    assert run.wait(20)
    workers.join()

    states = _by_state(study.trials)
    assert states.keys() == {TrialState.COMPLETE, TrialState.PRUNED}
    for t in study.trials:
        assert t.state == (TrialState.PRUNED if t.params["x"] > 5.0 else TrialState.COMPLETE)
        assert t.value == t.params["x"]  # a pruned trial keeps its last intermediate value
    assert run.error is None


@pytest.mark.timeout(30)
def test_nan_and_none_fail_the_trial_and_the_study_goes_on(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    run = open_run(n_trials=9)
    workers.start(_spec(server, run), w.objective_nan_none, 2)
    assert run.wait(20)
    workers.join()

    trials = run.study.trials
    assert _by_state(trials) == {
        TrialState.FAIL: [0, 1, 3, 4, 6, 7],
        TrialState.COMPLETE: [2, 5, 8],
    }
    assert all(t.values is None for t in trials if t.state == TrialState.FAIL)
    assert run.error is None
    assert run.stop_reason == StopReason.N_TRIALS


@pytest.mark.timeout(30)
def test_multi_objective_values(server: StudyServer, open_run: OpenRun, workers: Workers) -> None:
    study = optuna.create_study(
        storage=server.storage,
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )

    def objective(trial: RemoteTrial) -> Any:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:
            return x  # one value for two objectives: Optuna fails the trial
        return x, 2 * x

    run = open_run(study, n_trials=6)
    workers.start(_spec(server, run), objective, 2)
    assert run.wait(20)
    workers.join()

    trials = study.trials
    assert trials[0].state == TrialState.FAIL
    for t in trials[1:]:
        assert t.state == TrialState.COMPLETE
        assert t.values == [t.params["x"], 2 * t.params["x"]]
    assert {t.number for t in study.best_trials} <= {t.number for t in trials[1:]}
    assert run.error is None


@pytest.mark.timeout(30)
def test_study_stop_from_a_worker_stops_the_run(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 4:
            trial.study.stop()
        time.sleep(0.005)
        return x

    run = open_run(n_trials=500)
    workers.start(_spec(server, run), objective, 2)
    assert run.wait(20)
    workers.join()

    trials = run.study.trials
    assert run.stop_reason == StopReason.STUDY
    assert run.error is None
    assert 5 <= len(trials) < 500
    assert trials[4].state == TrialState.COMPLETE
    assert not any(t.state == TrialState.RUNNING for t in trials)


@pytest.mark.timeout(30)
def test_callbacks_run_on_the_driver_once_per_finished_trial(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    seen: list[tuple[int, TrialState, str]] = []

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        seen.append((trial.number, trial.state, threading.current_thread().name))

    run = open_run(n_trials=9, callbacks=[callback])
    workers.start(_spec(server, run), w.objective_flaky, 2, catch=(w.FlakyError,))
    assert run.wait(20)
    workers.join()

    assert sorted(n for n, _, _ in seen) == list(range(9))
    assert {n for n, s, _ in seen if s == TrialState.FAIL} == {0, 3, 6}
    assert not any(name in workers.names for _, _, name in seen)


@pytest.mark.timeout(30)
def test_timeout_stops_handing_out_trials(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    def objective(trial: RemoteTrial) -> float:
        time.sleep(0.02)
        return trial.suggest_float("x", 0, 1)

    t0 = time.monotonic()
    run = open_run(timeout=0.5)
    workers.start(_spec(server, run), objective, 2)
    assert run.wait(20)
    workers.join()

    assert run.stop_reason == StopReason.TIMEOUT
    assert time.monotonic() - t0 < 10
    assert all(t.state == TrialState.COMPLETE for t in run.study.trials)
    assert len(run.study.trials) == run.n_started > 0


@pytest.mark.timeout(60)
def test_worker_process_killed_mid_trial_fails_that_trial_and_others_finish(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    run = open_run(n_trials=10)
    workers.start(_spec(server, run), w.objective_die, 2, "process")

    assert run.wait(30)
    workers.join()

    trials = run.study.trials
    assert len(trials) == 10
    assert _by_state(trials) == {
        TrialState.FAIL: [2],
        TrialState.COMPLETE: [0, 1, 3, 4, 5, 6, 7, 8, 9],
    }
    assert "worker lost" in trials[2].system_attrs[ATTR_FAIL_REASON]
    assert trials[2].intermediate_values == {0: trials[2].params["x"]}
    assert sorted(c or 0 for c in workers.exitcodes) == [0, 17]
    assert run.error is None
    assert run.stop_reason == StopReason.N_TRIALS


class _Clock:
    """Monotonic seconds that move only when the test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_heartbeat", [60.0, 0.05])
def test_a_trial_without_heartbeats_is_failed_as_lost(
    make_server: Callable[..., StudyServer],
    workers: Workers,
    worker_heartbeat: float,
) -> None:
    server = make_server(tick_interval=0.025)
    study = optuna.create_study(storage=server.storage)
    clock = _Clock()  # the run's time: the test moves it past the grace period
    run = StudyRun.from_config(study, RunConfig(n_trials=3, heartbeat_grace=2.0), clock=clock)
    server.add_run(run)
    beats = Changes()  # notified on every heartbeat the run receives
    heartbeat = run.heartbeat

    def counted_heartbeat(conn_id: int, trial_ids: list[int]) -> list[int]:
        try:
            return heartbeat(conn_id, trial_ids)
        finally:
            beats.notify()

    run.heartbeat = counted_heartbeat  # type: ignore[method-assign]
    waiting, release = threading.Event(), threading.Event()

    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:
            waiting.set()
            assert release.wait(20)  # no call to the driver while the test moves the clock
        return x

    spec = WorkerSpec(server.endpoint, run.run_id, heartbeat_interval=worker_heartbeat)
    workers.start(spec, objective, 1)
    assert waiting.wait(20)
    for _ in range(4):  # 4 s of the run's time in steps shorter than the grace period
        seen = beats.count
        clock.now += 1.0
        if worker_heartbeat < 1:
            assert beats.wait_past(seen, 20)  # a heartbeat came after the step
    if worker_heartbeat > 1:
        assert wait_until(lambda: study.trials[0].state == TrialState.FAIL, 20)
    release.set()
    assert run.wait(20)
    workers.join()

    trials = study.trials
    assert len(trials) == 3
    assert all(t.state == TrialState.COMPLETE for t in trials[1:])
    if worker_heartbeat > 1:  # silent worker: failed by the driver
        assert trials[0].state == TrialState.FAIL
        reason = trials[0].system_attrs[ATTR_FAIL_REASON]
        assert "worker lost" in reason and "no heartbeat" in reason
    else:  # heartbeats keep a slow but healthy trial alive
        assert trials[0].state == TrialState.COMPLETE
    assert workers.results == {"test-worker-0": 3}
    assert run.error is None


def test_run_arguments_are_checked(server: StudyServer) -> None:
    study = optuna.create_study(storage=server.storage)
    with pytest.raises(ValueError, match="n_trials"):
        StudyRun(study, n_trials=-1)
    with pytest.raises(ValueError, match="heartbeat_grace"):
        StudyRun(study, heartbeat_grace=0)
    with pytest.raises(TypeError, match="timeout"):
        StudyRun(study, timeout="10")  # type: ignore[arg-type]
    other = optuna.create_study()
    with pytest.raises(ValueError, match="storage"):
        server.add_run(StudyRun(other))
    assert math.isclose(StudyRun(study, timeout=1.5).timeout or 0, 1.5)
