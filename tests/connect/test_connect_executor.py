"""SparkExecutor on a Spark Connect session: the same contract as on a classic session, with
the coordinator in this process (``"driver"``) or in a task of the job (``"cluster"``).

The job is ``spark.range`` + ``mapInArrow`` (Connect has no RDDs and no SparkContext) and is
cancelled by its operation tag. Studies live in a journal file, which the (local) cluster
reaches as well as this process.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from tests._helpers import states_of
from tests._helpers import wait_until
from tests.connect import _objectives as o

pytestmark = [pytest.mark.spark, pytest.mark.connect, pytest.mark.timeout(240)]


@pytest.fixture(params=["driver", "cluster"])
def coordinator(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def executor(connect_spark: Any, coordinator: str) -> SparkExecutor:
    return SparkExecutor(connect_spark, n_workers=2, coordinator=coordinator)  # type: ignore[arg-type]


@pytest.fixture
def create_study(tmp_path: Path) -> Callable[..., optuna.Study]:
    """``optuna.create_study`` on a journal file the cluster can read."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.log")))
    return functools.partial(optuna.create_study, storage=storage)


def test_the_session_is_a_connect_one(connect_spark: Any) -> None:
    assert type(connect_spark).__module__.startswith("pyspark.sql.connect")
    with pytest.raises(Exception, match="sparkContext"):
        _ = connect_spark.sparkContext  # what the executor must never touch there


@pytest.mark.parametrize("sampling", ["driver", "workers"])
def test_n_trials_is_exact_and_objectives_run_in_the_executors(
    connect_spark: Any, coordinator: str, create_study: Any, sampling: str
) -> None:
    study = create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    executor = SparkExecutor(
        connect_spark,
        n_workers=2,
        sampling=sampling,  # type: ignore[arg-type]
        coordinator=coordinator,  # type: ignore[arg-type]
    )
    executor.optimize(study, o.quadratic, n_trials=17)
    assert sorted(t.number for t in study.trials) == list(range(17))
    assert states_of(study) == {"COMPLETE": 17}
    assert os.getpid() not in {t.user_attrs["pid"] for t in study.trials}
    where = study.trials[0].system_attrs["optuna_spark:worker"]
    assert {"host", "pid", "partition", "attempt"} <= set(where)


def test_n_workers_defaults_to_the_servers_slots(
    connect_spark: Any, coordinator: str, create_study: Any
) -> None:
    study = create_study()
    executor = SparkExecutor(connect_spark, coordinator=coordinator)  # type: ignore[arg-type]
    executor.optimize(study, o.quadratic, n_trials=30)
    partitions = {t.system_attrs["optuna_spark:worker"]["partition"] for t in study.trials}
    # local[3,4]: three slots; in the cluster, task 0 is the coordinator.
    assert partitions <= ({0, 1, 2} if coordinator == "driver" else {1, 2})
    assert len(study.trials) == 30


def test_grid_sampler_gives_every_point_once(executor: SparkExecutor, create_study: Any) -> None:
    grid = {"x": [float(i) for i in range(5)], "y": [0, 1]}
    study = create_study(sampler=optuna.samplers.GridSampler(grid, seed=1))
    executor.optimize(study, o.grid)
    points = sorted((t.params["x"], t.params["y"]) for t in study.trials)
    assert points == sorted((float(x), y) for x in range(5) for y in (0, 1))


def test_pruning_is_decided_by_the_studys_pruner(
    executor: SparkExecutor, create_study: Any
) -> None:
    class PruneAboveZero(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return trial.last_step == 1 and trial.intermediate_values[0] > 0

    study = create_study(sampler=optuna.samplers.RandomSampler(seed=0), pruner=PruneAboveZero())
    executor.optimize(study, o.pruned_if_positive, n_trials=12)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 12
    assert all(t.params["x"] > 0 for t in pruned)


def test_catch_fails_the_trial_and_goes_on(executor: SparkExecutor, create_study: Any) -> None:
    study = create_study()
    executor.optimize(study, o.key_error_on_odd, n_trials=6, catch=(KeyError,))
    assert states_of(study) == {"COMPLETE": 3, "FAIL": 3}


def test_an_uncaught_exception_is_raised_on_the_client(
    executor: SparkExecutor, create_study: Any
) -> None:
    study = create_study()
    with pytest.raises(ZeroDivisionError) as info:
        executor.optimize(study, o.zero_division_on_third, n_trials=20)
    assert "zero_division_on_third" in str(info.value.__cause__)
    assert study.trials[2].state == TrialState.FAIL
    assert len(study.trials) < 20


def test_timeout_and_a_callbacks_stop(executor: SparkExecutor, create_study: Any) -> None:
    study = create_study(study_name="timed")
    t0 = time.monotonic()
    executor.optimize(study, o.sleep_half_a_second, timeout=2.0)
    assert 2.0 <= time.monotonic() - t0 < 30
    assert 2 <= len(study.trials) <= 12

    stopped = create_study(study_name="stopped")

    def stop_after_three(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 3:
            study.stop()

    executor.optimize(stopped, o.sleep_half_a_second, callbacks=[stop_after_three])
    assert 3 <= len(stopped.trials) <= 5  # those running when it stopped finish


def test_a_killed_worker_fails_exactly_its_trial(
    executor: SparkExecutor, create_study: Any, tmp_path: Path
) -> None:
    study = create_study()
    objective = functools.partial(o.die_once, marker=str(tmp_path / "died"))
    executor.optimize(study, objective, n_trials=8)
    assert states_of(study) == {"COMPLETE": 7, "FAIL": 1}
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    assert "worker lost" in failed.system_attrs["optuna_spark:fail_reason"]


def test_ctrl_c_interrupts_the_tasks_by_their_tag(
    executor: SparkExecutor, create_study: Any, tmp_path: Path
) -> None:
    study = create_study()
    beats = tmp_path / "beats"
    beats.mkdir()
    objective = functools.partial(o.beat_until_cancelled, folder=str(beats))

    def interrupt_when_both_run() -> None:
        if wait_until(lambda: len(list(beats.iterdir())) == 2, timeout=60):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        executor.optimize(study, objective, n_trials=4)
    assert len(study.trials) == 2
    assert all(t.state == TrialState.FAIL for t in study.trials)

    # The tasks were interrupted: their objectives stop touching their files.
    def still_beating() -> bool:
        before = {p.name: p.read_text() for p in beats.iterdir()}
        time.sleep(0.5)
        return any(p.read_text() != before[p.name] for p in beats.iterdir())

    assert wait_until(lambda: not still_beating(), timeout=30)


def test_the_progress_bar_counts_the_trials(
    executor: SparkExecutor, create_study: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    # With the coordinator in the cluster, the client counts them from the study's storage.
    study = create_study()
    executor.optimize(
        study, o.key_error_on_odd, n_trials=6, catch=(KeyError,), show_progress_bar=True
    )
    err = capfd.readouterr().err
    assert "6/6" in err
    assert "done=3 pruned=0 failed=3" in err


def test_many_studies_run_on_one_job_from_a_connect_client(
    executor: SparkExecutor, create_study: Any
) -> None:
    studies = [create_study(study_name=f"segment-{k}") for k in range(3)]
    executor.optimize_many(
        studies, o.quadratic, n_trials={"segment-0": 2, "segment-1": 3, "segment-2": 4}
    )
    assert [states_of(s) for s in studies] == [{"COMPLETE": n} for n in (2, 3, 4)]
    assert os.getpid() not in {t.user_attrs["pid"] for s in studies for t in s.trials}
