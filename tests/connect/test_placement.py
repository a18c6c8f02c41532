"""``coordinator="auto" | "driver" | "cluster"``: where the run lives, and why."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from optuna_spark import SparkExecutor
from optuna_spark import SparkSetupError
from optuna_spark._coordinator import ATTR_RUN_STAMP_PREFIX
from optuna_spark._spark import _coordinator_placement as _placement
from tests.connect import _objectives as o

pytestmark = [pytest.mark.spark, pytest.mark.connect, pytest.mark.timeout(240)]


def _journal_study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "j.log"))))


def _coordinator_pids(study: optuna.Study) -> list[int]:
    """The process that served each run of ``study`` (each run's lease records its pid)."""
    storage = study._storage
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(study.study_name))
    return [v["pid"] for k, v in attrs.items() if k.startswith(ATTR_RUN_STAMP_PREFIX)]


def test_auto_keeps_the_coordinator_here_when_tasks_reach_it(
    connect_spark: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _journal_study(tmp_path)
    with caplog.at_level(logging.INFO, logger="optuna_spark"):
        SparkExecutor(connect_spark, n_workers=2).optimize(study, o.quadratic, n_trials=4)
    assert "a Spark task reached this process" in caplog.text
    assert _coordinator_pids(study) == [os.getpid()]
    assert len(study.trials) == 4


def test_auto_moves_the_coordinator_into_the_cluster_when_tasks_cannot_reach_it(
    connect_spark: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on serverless compute, where tasks cannot open connections to the client.
    probes: list[str] = []
    monkeypatch.setattr(_placement, "executors_reach", lambda spark, host: probes.append(host))
    study = _journal_study(tmp_path)
    executor = SparkExecutor(connect_spark, n_workers=2)
    with caplog.at_level(logging.INFO, logger="optuna_spark"):
        executor.optimize(study, o.quadratic, n_trials=3)
        executor.optimize(study, o.quadratic, n_trials=3)
    assert "the coordinator runs in the cluster" in caplog.text
    assert probes == ["127.0.0.1"]  # one probe per executor and session
    pids = _coordinator_pids(study)
    assert len(pids) == 2 and os.getpid() not in pids  # a run per call, each in the cluster
    assert sorted(t.number for t in study.trials) == list(range(6))


def test_auto_keeps_an_in_memory_study_here(
    connect_spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    study = optuna.create_study()
    with caplog.at_level(logging.INFO, logger="optuna_spark"):
        SparkExecutor(connect_spark, n_workers=2).optimize(study, o.quadratic, n_trials=3)
    assert "the study is in memory" in caplog.text
    assert len(study.trials) == 3


def test_the_cluster_cannot_read_an_in_memory_study(connect_spark: Any) -> None:
    study = optuna.create_study()
    executor = SparkExecutor(connect_spark, coordinator="cluster")
    with pytest.raises(ValueError, match=r"cannot reach an in-memory study.*RDB URL"):
        executor.optimize(study, o.quadratic, n_trials=3)
    assert study.trials == []


def test_unpicklable_callbacks_are_refused_before_the_cluster_runs_anything(
    connect_spark: Any, tmp_path: Path
) -> None:
    lock = threading.Lock()

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with lock:
            pass

    study = _journal_study(tmp_path)
    executor = SparkExecutor(connect_spark, coordinator="cluster")
    with pytest.raises(SparkSetupError, match="cannot be pickled"):
        executor.optimize(study, o.quadratic, n_trials=3, callbacks=[callback])
    assert study.trials == []


def test_an_unknown_coordinator_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="'driver', 'cluster' or 'auto'"):
        SparkExecutor(coordinator="executor")  # type: ignore[arg-type]


def test_resources_are_refused_on_a_local_connect_server(connect_spark: Any) -> None:
    study = optuna.create_study()
    executor = SparkExecutor(connect_spark, resources={"gpus": 1})
    with pytest.raises(SparkSetupError, match="local mode"):
        executor.optimize(study, o.quadratic, n_trials=2)
    assert study.trials == []
