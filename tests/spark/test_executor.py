"""SparkExecutor on an embedded local Spark session: Study.optimize's contract, on Spark."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_spark import OptunaSparkError
from optuna_spark import SparkExecutor
from optuna_spark import SparkSetupError
from tests._helpers import states_of
from tests.spark import _objectives

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def test_n_trials_is_exact_and_objective_runs_in_executors(executor: SparkExecutor) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    executor.optimize(study, _objectives.quadratic, n_trials=23)
    assert len(study.trials) == 23
    assert states_of(study) == {"COMPLETE": 23}
    pids = {t.user_attrs["pid"] for t in study.trials}
    assert os.getpid() not in pids
    where = study.trials[0].system_attrs["optuna_spark:worker"]
    assert where["executor_id"] == "driver"  # local mode: the executor is the driver JVM
    assert {"host", "pid", "attempt", "partition", "task_attempt_id"} <= set(where)


def test_second_optimize_call_adds_n_trials(executor: SparkExecutor) -> None:
    study = optuna.create_study()
    executor.optimize(study, _objectives.quadratic, n_trials=5)
    executor.optimize(study, _objectives.quadratic, n_trials=7)
    assert len(study.trials) == 12


@pytest.mark.parametrize("n_workers", [2, 4])
def test_grid_sampler_gives_every_point_once_and_ends_by_itself(
    spark: object, n_workers: int
) -> None:
    grid = {"x": [float(i) for i in range(10)], "y": [0, 1]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=1))

    def objective(trial: optuna.trial.BaseTrial) -> float:
        time.sleep(0.02)
        return trial.suggest_float("x", 0, 9) + trial.suggest_int("y", 0, 1)

    SparkExecutor(spark, n_workers=n_workers).optimize(study, objective)  # type: ignore[arg-type]
    points = sorted((t.params["x"], t.params["y"]) for t in study.trials)
    assert points == sorted((x, y) for x in grid["x"] for y in grid["y"])
    assert states_of(study) == {"COMPLETE": 20}


def test_catch_fails_the_trial_and_goes_on(executor: SparkExecutor) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        if trial.number % 3 == 0:
            raise ArithmeticError("expected by the test")
        return 1.0

    study = optuna.create_study()
    executor.optimize(study, objective, n_trials=9, catch=(ArithmeticError,))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(study.trials) == 9 and len(failed) == 3
    assert (
        "ArithmeticError: expected by the test"
        in failed[0].system_attrs["optuna_spark:fail_reason"]
    )
    assert "Traceback" in failed[0].system_attrs["optuna_spark:traceback"]


def test_uncaught_exception_is_reraised_with_worker_traceback(executor: SparkExecutor) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        if trial.number == 2:
            raise ValueError("boom from a worker")
        time.sleep(0.05)
        return 1.0

    study = optuna.create_study()
    with pytest.raises(ValueError, match="boom from a worker") as info:
        executor.optimize(study, objective, n_trials=50)
    assert "raise ValueError" in str(info.value.__cause__)
    assert len(study.trials) < 50
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def test_timeout_stops_the_study(executor: SparkExecutor) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        time.sleep(0.2)
        return trial.suggest_float("x", 0, 1)

    study = optuna.create_study()
    t0 = time.monotonic()
    executor.optimize(study, objective, timeout=2.0)
    elapsed = time.monotonic() - t0
    assert 2.0 <= elapsed < 30
    assert len(study.trials) < 40  # no trial starts after the timeout
    assert all(t.state.is_finished() for t in study.trials)


def test_callbacks_run_on_the_driver_and_can_stop_the_study(executor: SparkExecutor) -> None:
    seen: list[tuple[int, int]] = []

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seen.append((os.getpid(), trial.number))
        if len(seen) == 4:
            study.stop()

    study = optuna.create_study()
    executor.optimize(study, _objectives.quadratic, n_trials=100, callbacks=[callback])
    assert {pid for pid, _ in seen} == {os.getpid()}
    # Callbacks run off the workers' path, so the trials that started before the fourth
    # callback ran finish too; stop() ends the hand-out long before n_trials.
    assert 4 <= len(study.trials) < 100
    # Every trial got its callback, once, before optimize returned.
    assert sorted(n for _, n in seen) == sorted(t.number for t in study.trials)


def test_multi_objective_and_constraints(executor: SparkExecutor) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        trial.set_constraint("c", x - 0.5)
        return x, 1 - x

    study = optuna.create_study(directions=["minimize", "minimize"])
    executor.optimize(study, objective, n_trials=10)
    assert len(study.trials) == 10
    for t in study.trials:
        assert t.values == [t.params["x"], 1 - t.params["x"]]
        assert t.system_attrs["constraints:c"] == pytest.approx(t.params["x"] - 0.5)
    assert study.best_trials


def test_tpe_with_constant_liar_converges(executor: SparkExecutor) -> None:
    sampler = optuna.samplers.TPESampler(seed=3, n_startup_trials=5, constant_liar=True)
    study = optuna.create_study(sampler=sampler)
    executor.optimize(study, _objectives.quadratic, n_trials=40)
    assert len(study.trials) == 40
    assert study.best_value < 0.5


@pytest.mark.parametrize(
    "kind", ["sqlite", "journal", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_persistent_storages_on_the_driver(
    executor: SparkExecutor, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    storage: str | JournalStorage
    if kind == "sqlite":
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    elif kind == "postgres":
        storage = request.getfixturevalue("postgres_url")
    else:
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(study_name="s", storage=storage)
    executor.optimize(study, _objectives.quadratic, n_trials=12)
    reloaded = optuna.load_study(study_name="s", storage=storage)
    assert len(reloaded.trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in reloaded.trials)


def test_worker_killed_mid_trial_fails_that_trial_and_study_completes(
    executor: SparkExecutor, tmp_path: Path
) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    objective = functools.partial(_objectives.die_once, marker=str(tmp_path / "died"))
    executor.optimize(study, objective, n_trials=12)
    assert len(study.trials) == 12
    lost = study.trials[0]
    assert lost.state == TrialState.FAIL
    assert "worker lost" in lost.system_attrs["optuna_spark:fail_reason"]
    assert states_of(study) == {"FAIL": 1, "COMPLETE": 11}
    attempts = {t.system_attrs["optuna_spark:worker"]["attempt"] for t in study.trials}
    assert max(attempts) >= 1  # Spark retried the task and the new attempt kept pulling


def test_retry_lost_trials_reruns_the_parameters(spark: object, tmp_path: Path) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    objective = functools.partial(_objectives.die_once, marker=str(tmp_path / "died"))
    ex = SparkExecutor(spark, n_workers=2, retry_lost_trials=True)  # type: ignore[arg-type]
    ex.optimize(study, objective, n_trials=6)
    assert len(study.trials) == 6
    retries = [t for t in study.trials if "optuna_spark:retry_of" in t.system_attrs]
    assert len(retries) == 1
    assert retries[0].params == study.trials[0].params
    assert retries[0].state == TrialState.COMPLETE


def test_ctrl_c_cancels_the_job_and_fails_running_trials(executor: SparkExecutor) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        time.sleep(30)
        return 0.0

    study = optuna.create_study()

    def interrupt_when_both_run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if len(running) == 2:
                break
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        executor.optimize(study, objective, n_trials=4)
    assert len(study.trials) == 2
    assert all(t.state == TrialState.FAIL for t in study.trials)
    assert "KeyboardInterrupt" in study.trials[0].system_attrs["optuna_spark:fail_reason"]
    sc = executor.spark.sparkContext
    deadline = time.monotonic() + 20
    while sc.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sc.statusTracker().getActiveJobsIds() == []


def test_unpicklable_objective_gets_a_clear_error(executor: SparkExecutor) -> None:
    lock = threading.Lock()

    def objective(trial: optuna.trial.BaseTrial) -> float:
        with lock:
            return 0.0

    with pytest.raises(SparkSetupError, match=r"objective \(its variable 'lock'\) \(a lock\)"):
        executor.optimize(optuna.create_study(), objective, n_trials=1)


def test_progress_bar_shows_states_and_best_value(
    executor: SparkExecutor, capfd: pytest.CaptureFixture[str]
) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise KeyError("caught")
        return float(trial.number)

    study = optuna.create_study()
    executor.optimize(study, objective, n_trials=6, catch=(KeyError,), show_progress_bar=True)
    err = capfd.readouterr().err
    assert "6/6" in err
    assert "done=4 pruned=1 failed=1 best=0" in err


def test_a_job_that_cannot_run_raises_with_the_cause(executor: SparkExecutor) -> None:
    study = optuna.create_study()
    with pytest.raises(OptunaSparkError, match="Job aborted") as info:
        executor.optimize(study, _objectives.always_dies, timeout=120)
    assert "Python worker exited unexpectedly" in str(info.value)
    assert all(t.state == TrialState.FAIL for t in study.trials)


def test_uncaught_error_ends_trials_that_never_ask_should_prune(spark: object) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        if trial.number == 0:
            deadline = time.monotonic() + 60  # until the other worker runs its trial
            while len(trial.study.get_trials(deepcopy=False)) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            raise ValueError("boom")
        time.sleep(300)  # never reports: only the driver can end it
        return 0.0

    study = optuna.create_study()
    study.enqueue_trial({})
    executor = SparkExecutor(spark, n_workers=2, stuck_grace=1.0)  # type: ignore[arg-type]
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        executor.optimize(study, objective, n_trials=4)
    assert time.monotonic() - t0 < 60
    other = study.trials[1]
    assert other.state == TrialState.FAIL
    assert "uncaught" in other.system_attrs["optuna_spark:fail_reason"]


@pytest.mark.postgres
def test_two_drivers_on_one_postgresql_study(spark: object, postgres_url: str) -> None:
    # Two optimize calls at once on one study, each with its own run: n_trials each, exact,
    # and neither fails the other's trials as a dead driver's.
    optuna.create_study(study_name="shared", storage=postgres_url)
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            study = optuna.load_study(study_name="shared", storage=postgres_url)
            SparkExecutor(spark, n_workers=1).optimize(study, _objectives.quadratic, n_trials=10)  # type: ignore[arg-type]
        except BaseException as e:
            errors.append(e)

    drivers = [threading.Thread(target=drive) for _ in range(2)]
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join(200)
    assert errors == []
    trials = optuna.load_study(study_name="shared", storage=postgres_url).trials
    assert len(trials) == 20 and all(t.state == TrialState.COMPLETE for t in trials)
    runs = {t.system_attrs["optuna_spark:worker"]["run_id"] for t in trials}
    assert len(runs) == 2
