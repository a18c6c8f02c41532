"""Resources chosen per trial: each trial runs on a worker of the profile its parameters call
for, whatever worker asked for it."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark.remote import ProfileChoice
from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import RunConfig
from optuna_spark.remote import RunPool
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from tests._helpers import Workers
from tests._helpers import wait_until

pytestmark = pytest.mark.timeout(60)

WORKERS = {"small": 2, "large": 1}


def by_layers(trial: optuna.Trial) -> str:
    return "large" if trial.suggest_int("layers", 1, 16) > 8 else "small"


def _run(study: optuna.Study, choose: Any = by_layers, **config: Any) -> StudyRun:
    return StudyRun.from_config(
        study, RunConfig(profiles=ProfileChoice(choose, WORKERS), **config)
    )


def _start(workers: Workers, spec: WorkerSpec, objective: Any) -> dict[str, str]:
    """Each profile's workers, as ``SparkExecutor`` starts them; thread name -> profile."""
    profiles = {}
    for profile, n in WORKERS.items():
        first = len(workers.threads)
        workers.start(dataclasses.replace(spec, profile=profile), objective, n)
        profiles.update({t.name: profile for t in workers.threads[first:]})
    return profiles


class _Where:
    """Records which worker thread ran each trial, with the parameter that chose it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ran: list[tuple[str, int]] = []

    def objective(self, trial: RemoteTrial) -> float:
        layers = trial.suggest_int("layers", 1, 16)  # the value the chooser drew
        with self._lock:
            self.ran.append((threading.current_thread().name, layers))
        return layers + trial.suggest_float("x", 0, 1)


def test_each_trial_runs_on_a_worker_of_its_profile(server: StudyServer, workers: Workers) -> None:
    study = optuna.create_study(
        storage=server.storage, sampler=optuna.samplers.RandomSampler(seed=3)
    )
    run = _run(study, n_trials=30)
    server.add_run(run)
    where = _Where()
    profiles = _start(workers, run.worker_spec(server.endpoint), where.objective)
    assert run.wait(50)
    workers.join()

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 30
    assert len(where.ran) == 30
    for thread, layers in where.ran:
        assert profiles[thread] == ("large" if layers > 8 else "small")
    for trial in study.trials:  # recorded on the trial too, where it ran
        expected = "large" if trial.params["layers"] > 8 else "small"
        assert trial.system_attrs["optuna_spark:worker"]["profile"] == expected
    assert {profiles[thread] for thread, _ in where.ran} == {"small", "large"}
    assert run.n_dismissed == 3  # the two profiles' workers, counted apart


def test_trials_of_a_busy_profile_wait_without_sampling_far_ahead(
    server: StudyServer, workers: Workers
) -> None:
    # Every trial needs the one large worker: the small workers park trials for it, but no
    # more than there are workers, and run none themselves.
    study = optuna.create_study(storage=server.storage)
    run = _run(study, lambda trial: "large", n_trials=10)
    server.add_run(run)
    most = [0]

    def objective(trial: RemoteTrial) -> float:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        most[0] = max(most[0], len(running))
        return trial.suggest_float("x", 0, 1)

    profiles = _start(workers, run.worker_spec(server.endpoint), objective)
    assert run.wait(50)
    workers.join()

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 10
    assert most[0] <= 1 + sum(WORKERS.values())  # the one running, and at most 3 waiting
    ran = {name: workers.results[name] for name in profiles}
    assert sorted(ran.values()) == [0, 0, 10]


def test_a_chooser_that_names_no_profile_stops_the_run_with_a_clear_error(
    server: StudyServer, workers: Workers
) -> None:
    study = optuna.create_study(storage=server.storage)
    run = _run(study, lambda trial: "huge", n_trials=4)
    server.add_run(run)
    _start(workers, run.worker_spec(server.endpoint), lambda trial: 0.0)
    assert run.wait(50)
    workers.join()

    assert isinstance(run.error, ValueError)
    assert "'huge', which is not one of the profiles ['large', 'small']" in str(run.error)
    assert [t.state for t in study.trials] == [TrialState.FAIL]  # nothing left RUNNING


def test_parked_trials_fail_as_not_started_when_the_run_is_interrupted(
    server: StudyServer, workers: Workers
) -> None:
    study = optuna.create_study(storage=server.storage)
    run = _run(study, lambda trial: "large", n_trials=10)
    server.add_run(run)
    release = threading.Event()

    def objective(trial: RemoteTrial) -> float:
        release.wait(30)
        return 0.0

    _start(workers, run.worker_spec(server.endpoint), objective)

    def parked() -> list[optuna.trial.FrozenTrial]:
        return [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if "optuna_spark:worker" not in t.system_attrs
        ]

    assert wait_until(lambda: len(parked()) >= 2, 20)
    waiting = [t.number for t in parked()]
    run.interrupt("interrupted: test")
    release.set()
    assert run.wait(50)
    workers.join()

    for number in waiting:
        trial = study.trials[number]
        assert trial.state == TrialState.FAIL
        assert "optuna_spark:worker" not in trial.system_attrs  # never started anywhere
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_a_pool_hands_each_studys_trials_to_workers_of_their_profile(
    server: StudyServer, workers: Workers
) -> None:
    studies = [
        optuna.create_study(
            study_name=f"segment-{i}",
            storage=server.storage,
            sampler=optuna.samplers.RandomSampler(seed=i),
        )
        for i in range(3)
    ]
    pool = RunPool([_run(s, n_trials=6) for s in studies])
    server.add_pool(pool)
    where = _Where()
    profiles = _start(workers, pool.worker_spec(server.endpoint), where.objective)
    assert pool.wait(50)
    workers.join()

    assert all([t.state for t in s.trials] == [TrialState.COMPLETE] * 6 for s in studies)
    for thread, layers in where.ran:
        assert profiles[thread] == ("large" if layers > 8 else "small")
    assert pool.n_dismissed == 3


def test_a_worker_without_a_profile_of_the_run_is_told_what_to_start_it_with(
    server: StudyServer, workers: Workers
) -> None:
    study = optuna.create_study(storage=server.storage)
    run = _run(study, n_trials=2)
    server.add_run(run)
    workers.start(run.worker_spec(server.endpoint), lambda trial: 0.0, 1)  # no profile
    workers.join()
    (error,) = workers.results.values()
    assert "serves None: start it with a WorkerSpec whose profile names one of them" in str(error)
    assert study.trials == []  # nothing was made for it
    run.stop()


def test_trials_waiting_for_a_profile_no_worker_ever_served_are_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from optuna_spark._coordinator._leases import LeaseTable
    from optuna_spark._coordinator._profiles import PATIENCE
    from optuna_spark._coordinator._profiles import ProfileWatch

    now = [0.0]
    study = optuna.create_study()
    leases = LeaseTable(heartbeat_grace=10.0, clock=lambda: now[0])
    for _ in range(2):
        trial = study.ask()
        leases.park(trial._trial_id, trial, "large")
    watch = ProfileWatch(ProfileChoice(by_layers, WORKERS), clock=lambda: now[0])
    watch.saw("small")
    with pytest.raises(ValueError, match="serves 'huge'"):
        watch.saw("huge")
    now[0] = PATIENCE - 1
    watch.check(leases)
    assert "resource profile" not in caplog.text
    now[0] = PATIENCE + 1
    watch.check(leases)
    watch.check(leases)
    warnings = [r for r in caplog.records if "resource profile 'large'" in r.getMessage()]
    assert len(warnings) == 1 and "Spark may be unable to place its tasks" in caplog.text
    watch.saw("large")  # a worker of it came: nothing more to say, ever
    assert len([r for r in caplog.records if "'large'" in r.getMessage()]) == 1


def test_a_profile_choice_is_checked_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="map each profile's name to its number of workers"):
        ProfileChoice(by_layers, {"small": 0})
    with pytest.raises(TypeError, match="choose must be callable"):
        ProfileChoice("small", WORKERS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need sampling='driver'"):
        RunConfig(profiles=ProfileChoice(by_layers, WORKERS), sampling="workers")
