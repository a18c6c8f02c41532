"""A study on PostgreSQL whose database restarts mid-study: the run rides the outage out and
loses nothing; an outage longer than storage_grace stops it with a clear error and leaves
nothing RUNNING."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import StorageUnavailableError
from optuna_spark._optuna_adapter import storage_of
from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers
from tests._helpers import wait_until
from tests._postgres import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def objective(trial: RemoteTrial) -> float:
    x = trial.suggest_float("x", 0, 1)
    for step in range(4):
        time.sleep(0.05)  # training
        trial.report(x + step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def _finished(study: optuna.Study) -> int:
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def test_a_database_restart_mid_study_loses_nothing(
    postgres_server: PostgresServer,
    postgres_url: str,
    make_server: Callable[..., StudyServer],
    workers: Workers,
) -> None:
    study = optuna.create_study(storage=postgres_url, pruner=optuna.pruners.NopPruner())
    server = make_server(storage_of(study))
    run = StudyRun(study, n_trials=40, storage_grace=60.0)
    server.add_run(run)
    workers.start(run.worker_spec(server.endpoint), objective, 2)
    watcher = optuna.load_study(study_name=study.study_name, storage=postgres_url)
    assert wait_until(lambda: _finished(watcher) >= 8, 60)
    postgres_server.stop("fast")  # every connection closed at once, as in a failover
    postgres_server.start()
    assert run.wait(120)
    workers.join()
    assert run.error is None
    trials = optuna.load_study(study_name=study.study_name, storage=postgres_url).trials
    assert len(trials) == 40
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    for t in trials:  # every report reached the study, once
        assert t.intermediate_values == {s: t.params["x"] + s for s in range(4)}


def test_an_outage_longer_than_storage_grace_stops_the_study_with_a_clear_error(
    postgres_server: PostgresServer,
    postgres_url: str,
    make_server: Callable[..., StudyServer],
    workers: Workers,
) -> None:
    study = optuna.create_study(storage=postgres_url)
    server = make_server(storage_of(study), storage_grace=5.0)
    run = StudyRun(study, n_trials=200, storage_grace=5.0)
    server.add_run(run)
    workers.start(run.worker_spec(server.endpoint), objective, 2)
    watcher = optuna.load_study(study_name=study.study_name, storage=postgres_url)
    assert wait_until(lambda: _finished(watcher) >= 4, 60)
    postgres_server.stop("fast")
    try:
        assert run.changes.wait_for(lambda: run.error is not None, 60)
    finally:
        postgres_server.start()  # back within twice the grace: the run can still clean up
    assert run.wait(120)
    workers.join()
    assert isinstance(run.error, StorageUnavailableError)
    assert "longer than storage_grace=5 s" in str(run.error)
    trials = optuna.load_study(study_name=study.study_name, storage=postgres_url).trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    for t in trials:  # each trial the run held ended, and says why when it did not complete
        if t.state == TrialState.FAIL:
            assert "optuna_spark:fail_reason" in t.system_attrs
        elif t.state == TrialState.PRUNED:  # told to stop at should_prune, as the run stopped
            assert "storage" in t.system_attrs["optuna_spark:interrupted"]


def _sleepy(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    for step in range(3):
        time.sleep(0.1)
        trial.report(x, step)
    return x


@pytest.mark.spark
def test_sparkexecutor_rides_out_a_database_restart(
    spark: object, postgres_server: PostgresServer, postgres_url: str
) -> None:
    from optuna_spark import SparkExecutor

    study = optuna.create_study(storage=postgres_url)
    watcher = optuna.load_study(study_name=study.study_name, storage=postgres_url)

    def restart_when_under_way() -> None:
        if wait_until(lambda: _finished(watcher) >= 8, 120):
            postgres_server.stop("fast")
            postgres_server.start()

    nemesis = threading.Thread(target=restart_when_under_way)
    nemesis.start()
    SparkExecutor(spark, n_workers=2).optimize(study, _sleepy, n_trials=40)  # type: ignore[arg-type]
    nemesis.join()
    trials = optuna.load_study(study_name=study.study_name, storage=postgres_url).trials
    assert len(trials) == 40
    assert [t.number for t in trials if t.state != TrialState.COMPLETE] == []
