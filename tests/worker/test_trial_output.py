"""What objectives print, warn and log on workers reaches the driver: live to listeners, the
last part on the trial (``get_trial_log``), the whole as an artifact when a store is given."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
from optuna.artifacts import get_all_artifact_meta

from optuna_spark import StorageServer
from optuna_spark import StudyRun
from optuna_spark import get_trial_log
from optuna_spark.coordinator._output import LOG_TAIL_CHARS
from tests import _workers as w
from tests._helpers import Workers

OpenRun = Callable[..., StudyRun]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_prints_warnings_and_log_records_are_kept_per_trial(
    server: StorageServer, open_run: OpenRun, workers: Workers, mode: str
) -> None:
    run = open_run(n_trials=4)
    heard: list[tuple[int, str]] = []
    run.output_listeners.append(lambda number, text: heard.append((number, text)))
    # Threads share the process's streams: each write goes to its own thread's trial. (In
    # this process pytest intercepts warnings: only worker processes show them to users.)
    workers.start(run.worker_spec(server.endpoint), w.objective_chatty, 3, mode)
    assert run.wait(30)
    workers.join()

    for trial in run.study.trials:
        log = get_trial_log(run.study, trial.number)
        assert f"hello from trial {trial.number}\n" in log
        assert log.count("hello from trial") == 1  # nothing of the other workers' trials
        if mode == "process":
            assert f"UserWarning: careful in trial {trial.number}" in log
        assert "loss is 1.5" in log
        live = "".join(text for number, text in heard if number == trial.number)
        assert f"hello from trial {trial.number}" in live


@pytest.mark.timeout(60)
def test_a_flood_is_capped_and_says_so(
    server: StorageServer, open_run: OpenRun, workers: Workers
) -> None:
    run = open_run(n_trials=1)
    workers.start(run.worker_spec(server.endpoint), w.objective_very_chatty, 1, "process")
    assert run.wait(30)
    workers.join()
    log = get_trial_log(run.study, 0)
    assert len(log) <= LOG_TAIL_CHARS + 100
    assert log.startswith("[... ") and "earlier characters ...]" in log
    # The worker shipped 1 MiB, then said how much it left out; "the end" was not shipped.
    assert "more characters of this trial's output were not sent" in log
    assert "the end" not in log


@pytest.mark.timeout(60)
def test_the_whole_output_is_an_artifact_of_the_trial(
    server: StorageServer, workers: Workers, tmp_path: Path
) -> None:
    store = FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=2, log_artifact_store=store)
    server.add_run(run)
    try:
        workers.start(run.worker_spec(server.endpoint), w.objective_chatty, 1, "process")
        assert run.wait(30)
        workers.join()
    finally:
        server.remove_run(run)
    for trial in study.trials:
        (meta,) = get_all_artifact_meta(trial, storage=server.storage)
        assert meta.filename == f"trial-{trial.number}.log"
        path = tmp_path / "downloaded.log"
        download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(path))
        assert path.read_text() == get_trial_log(study, trial.number)
        path.unlink()


def test_output_after_the_trial_ended_is_ignored(server: StorageServer, open_run: OpenRun) -> None:
    from optuna_spark.wire import Connection
    from optuna_spark.wire import messages as m

    run = open_run(n_trials=1)
    conn = Connection(server.endpoint)
    # No such trial is running: the driver ignores it and answers without an error.
    assert conn.call(m.TrialOutput(run.run_id, 12345, "late")) is None
    assert conn.call(m.TrialOutput("no-such-run", 1, "late")) is None
    conn.close()


def test_the_driver_keeps_no_more_than_a_worker_may_send(
    server: StorageServer, open_run: OpenRun
) -> None:
    from optuna_spark.coordinator._output import MAX_OUTPUT_CHARS
    from optuna_spark.wire import Connection
    from optuna_spark.wire import messages as m

    run = open_run(n_trials=1)
    heard: list[str] = []
    run.output_listeners.append(lambda number, text: heard.append(text))
    conn = Connection(server.endpoint)
    reply = conn.call(m.Ask(run.run_id, m.WorkerInfo(host="test", pid=1)))
    chunk = "y" * (m.MAX_TRIAL_OUTPUT // 2)
    for _ in range(4):  # twice what a worker may send, from a client that ignores the cap
        conn.call(m.TrialOutput(run.run_id, reply.trial_id, chunk))
    assert sum(map(len, heard)) == MAX_OUTPUT_CHARS
    conn.close()


def test_get_trial_log_of_a_trial_that_does_not_exist() -> None:
    study = optuna.create_study()
    with pytest.raises(ValueError, match=r"has no trial number 3 \(it has 0 trials"):
        get_trial_log(study, 3)


def test_the_streams_are_restored_after_each_trial(
    server: StorageServer, open_run: OpenRun, workers: Workers
) -> None:
    out, err = sys.stdout, sys.stderr
    run = open_run(n_trials=12)
    workers.start(run.worker_spec(server.endpoint), w.objective_chatty, 4)
    assert run.wait(30)
    workers.join()
    assert sys.stdout is out and sys.stderr is err
