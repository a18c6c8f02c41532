"""What objectives print, warn and log on workers reaches the driver: live to listeners, the
last part on the trial (``get_trial_log``), the whole as an artifact when a store is given."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
from optuna.artifacts import get_all_artifact_meta

from optuna_spark import get_trial_log
from optuna_spark._coordinator._output import LOG_TAIL_CHARS
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests import _workers as w
from tests._helpers import Workers

OpenRun = Callable[..., StudyRun]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_prints_warnings_and_log_records_are_kept_per_trial(
    server: StudyServer, open_run: OpenRun, workers: Workers, mode: str
) -> None:
    run = open_run(n_trials=4)
    heard: list[tuple[int, str]] = []
    run.output_listeners.append(lambda number, text: heard.append((number, text)))
    # Threads share the process's streams: each write goes to its own thread's trial. (In
    # this process pytest records warnings, one per trial: only worker processes show them
    # to users.)
    expected = pytest.warns(UserWarning, match="careful in trial")
    with expected if mode == "thread" else contextlib.nullcontext():
        workers.start(run.worker_spec(server.endpoint), w.objective_chatty, 3, mode)
        assert run.wait(30)
        workers.join()
    if mode == "thread":
        assert len(expected) == len(run.study.trials)

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
    server: StudyServer, open_run: OpenRun, workers: Workers
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
    server: StudyServer, workers: Workers, tmp_path: Path
) -> None:
    store = FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=2, log_artifact_store=store)
    run.start()
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


def test_output_after_the_trial_ended_is_ignored(server: StudyServer, open_run: OpenRun) -> None:
    from optuna_spark.wire import Connection
    from optuna_spark.wire import messages as m

    run = open_run(n_trials=1)
    conn = Connection(server.endpoint)
    # No such trial is running: the driver ignores it and answers without an error.
    assert conn.call(m.TrialOutput(run.run_id, 12345, "late")) is None
    assert conn.call(m.TrialOutput("no-such-run", 1, "late")) is None
    conn.close()


def test_the_driver_keeps_no_more_than_a_worker_may_send(
    server: StudyServer, open_run: OpenRun
) -> None:
    from optuna_spark._coordinator._output import MAX_OUTPUT_CHARS
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


@pytest.mark.filterwarnings("ignore:careful in trial:UserWarning")  # what the objective warns
def test_the_streams_are_wrapped_once_and_never_swapped_back(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    # A stream another thread may hold (print keeps sys.stdout between its writes) must
    # never be freed under it: the routers stay, and hold what they stand in for.
    run = open_run(n_trials=12)
    workers.start(run.worker_spec(server.endpoint), w.objective_chatty, 4)
    assert run.wait(30)
    workers.join()
    out, err = sys.stdout, sys.stderr
    assert type(out).__name__ == type(err).__name__ == "_Router"
    run = open_run(n_trials=4)
    workers.start(run.worker_spec(server.endpoint), w.objective_chatty, 2)
    assert run.wait(30)
    workers.join()
    assert sys.stdout is out and sys.stderr is err


_PRINTING_THREADS = """
import sys, threading
import optuna
from optuna_spark.remote import StudyRun, StudyServer, run_worker

sys.setswitchinterval(1e-6)  # threads switch between print()'s writes
optuna.logging.set_verbosity(optuna.logging.ERROR)
stop = threading.Event()

def chatter():
    while not stop.is_set():
        print("chatter", flush=False)

storage = optuna.storages.InMemoryStorage()
study = optuna.create_study(storage=storage)
run = StudyRun(study, n_trials=600)
with StudyServer(storage) as server:
    server.add_run(run)
    talkers = [threading.Thread(target=chatter) for _ in range(2)]
    for t in talkers:
        t.start()
    run_worker(run.worker_spec(server.endpoint), lambda t: print("in trial") or 0.0)
    stop.set()
    for t in talkers:
        t.join()
    assert run.wait(60)
print("SURVIVED", len(study.trials), file=sys.stderr)
"""


@pytest.mark.timeout(240)
def test_threads_printing_while_trials_are_captured_never_crash_the_process(
    tmp_path: Path,
) -> None:
    # Swapping sys.stdout around each trial freed the stream a printing thread still held:
    # the process died with SIGSEGV.
    out = subprocess.run(
        [sys.executable, "-c", _PRINTING_THREADS],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SURVIVED 600" in out.stderr


_QUIET = """
import os, sys, time
from optuna_spark._worker import _output

class Trial:
    def __init__(self):
        self.text = []
    def add(self, text):
        self.text.append(text)

_output.quiet_streams(sys.argv[1])
print("outside, from Python")
os.write(2, b"outside, native\\n")
deadline = time.monotonic() + 30
while b"outside, native" not in open(sys.argv[1], "rb").read() and time.monotonic() < deadline:
    time.sleep(0.01)  # the pipe's reader thread writes it to the log
trial = Trial()
_output._streams.enter(trial)
print("inside, from Python")
os.write(1, b"inside, native\\n")
deadline = time.monotonic() + 30
while "inside, native" not in "".join(trial.text) and time.monotonic() < deadline:
    time.sleep(0.01)  # the pipe's reader thread hands it over
_output._streams.leave()
sys.stdout.flush()
os.write(int(sys.argv[2]), ("".join(trial.text)).encode())
"""


def test_a_quiet_process_keeps_trials_output_for_the_driver_and_the_rest_in_a_log(
    tmp_path: Path,
) -> None:
    log, kept = tmp_path / "workers.log", tmp_path / "kept"
    with open(kept, "wb") as fd3:
        out = subprocess.run(
            [sys.executable, "-c", _QUIET, str(log), str(fd3.fileno())],
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=(fd3.fileno(),),
            cwd=tmp_path,
        )
    assert out.returncode == 0, out.stderr
    # Nothing reaches the process's own streams (on local-mode Spark: the terminal).
    assert out.stdout == "" and out.stderr == ""
    assert kept.read_text() == "inside, from Python\ninside, native\n"
    assert set(log.read_text().splitlines()) == {"outside, from Python", "outside, native"}
