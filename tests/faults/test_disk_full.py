"""A journal-file study on a full disk (a 1 MiB tmpfs): the run stops with the storage's own
error, and the study loads afterwards, nothing corrupted."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test alone."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="optuna-spark-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def objective(trial: optuna.Trial) -> float:
    trial.set_user_attr("payload", "x" * 40_000)  # fills 1 MiB in about 25 trials
    return trial.suggest_float("x", 0, 1)


def test_a_full_disk_stops_the_run_with_its_error_and_the_study_still_loads(
    small_disk: Path, workers: Workers
) -> None:
    path = str(small_disk / "journal.log")
    storage = JournalStorage(JournalFileBackend(path))
    study = optuna.create_study(storage=storage, study_name="full")
    with StudyServer(storage) as server:
        run = StudyRun(study, n_trials=200)
        server.add_run(run)
        workers.start(run.worker_spec(server.endpoint), objective, 2)
        assert run.wait(90)
        workers.join()
    assert isinstance(run.error, OSError) and "No space left on device" in str(run.error)
    reloaded = optuna.load_study(
        study_name="full", storage=JournalStorage(JournalFileBackend(path))
    )
    done = [t for t in reloaded.trials if t.state == TrialState.COMPLETE]
    assert 10 <= len(done) < 200  # what was written before the disk filled is all there
    assert all(t.user_attrs["payload"] == "x" * 40_000 for t in done)
