"""Durable trials over the wire: a worker process killed mid-trial, a driver killed
mid-study; the trial resumes from its checkpoint, keeps its number and reports each step
once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers
from tests._helpers import wait_until
from tests._workers import objective_checkpointed

pytestmark = pytest.mark.timeout(120)


def _check_resumed(trial: optuna.trial.FrozenTrial, lost_after: int) -> None:
    assert trial.state == TrialState.COMPLETE
    x = trial.params["x"]
    assert trial.intermediate_values == {step: x + step for step in range(6)}
    assert trial.user_attrs["starts"] == [0, lost_after + 1]
    (resume,) = trial.system_attrs["optuna_spark:resumes"]
    assert resume["checkpoint_step"] == lost_after and resume["last_step"] == lost_after


def test_a_worker_process_killed_mid_trial_resumes_on_another(
    make_server: Callable[..., StudyServer],
    workers: Workers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPTUNA_SPARK_TEST_DIE_AT", "2")
    store = FileSystemArtifactStore(str(tmp_path))
    server = make_server(tick_interval=0.05)
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=3, resume_lost_trials=1, checkpoint_store=store)
    server.add_run(run)
    workers.start(run.worker_spec(server.endpoint), objective_checkpointed, 2, mode="process")
    assert run.wait(90)
    workers.join()
    assert run.error is None
    trials = study.trials
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    _check_resumed(trials[0], lost_after=2)
    (resume,) = trials[0].system_attrs["optuna_spark:resumes"]
    assert "connection to the driver closed" in resume["reason"]
    assert sorted(code or 0 for code in workers.exitcodes) == [0, 17]
    assert list(tmp_path.iterdir()) == []  # finished trials' checkpoints are removed


_DRIVER = """
import sys, threading, optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna_spark.remote import StudyRun, StudyServer, run_worker
from tests._workers import objective_checkpointed
study = optuna.load_study(study_name="s", storage=sys.argv[1])
server = StudyServer(study._storage).start()
run = StudyRun(study, n_trials=1, resume_lost_trials=1,
               checkpoint_store=FileSystemArtifactStore(sys.argv[2]))
server.add_run(run)
run_worker(run.worker_spec(server.endpoint), objective_checkpointed)
"""


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_driver_killed_mid_study_is_resumed_by_the_next_optimization(
    database: str,
    make_server: Callable[..., StudyServer],
    workers: Workers,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if database == "postgres":
        storage = request.getfixturevalue("postgres_url")
    else:
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    mark = tmp_path / "saved"
    optuna.create_study(study_name="s", storage=storage)
    env = {**os.environ, "OPTUNA_SPARK_TEST_HANG_AT": "3", "OPTUNA_SPARK_TEST_MARK": str(mark)}
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, storage, str(checkpoints)], env=env)
    try:
        assert wait_until(mark.exists, 60), "the trial never saved its checkpoint"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)

    server = make_server(storage)
    run = StudyRun(
        optuna.load_study(study_name="s", storage=server.storage),
        n_trials=1,
        resume_lost_trials=1,
        checkpoint_store=FileSystemArtifactStore(str(checkpoints)),
    )
    server.add_run(run)  # adopts the checkpointed trial at once (its driver's pid is gone)
    workers.start(run.worker_spec(server.endpoint), objective_checkpointed, 1)
    assert run.wait(60)
    workers.join()
    assert run.error is None
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.number for t in trials] == [0, 1]  # the resumed trial is not one of n_trials
    _check_resumed(trials[0], lost_after=3)
    assert trials[0].system_attrs["optuna_spark:resumes"][0]["reason"].startswith("driver lost")
    assert trials[1].state == TrialState.COMPLETE


def test_a_decommissioning_executor_hands_its_trial_back_with_nothing_lost(
    make_server: Callable[..., StudyServer], tmp_path: Path
) -> None:
    from optuna_spark import checkpoint
    from optuna_spark.remote import run_worker

    store = FileSystemArtifactStore(str(tmp_path))
    server = make_server(tick_interval=0.05)
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=2, resume_lost_trials=1, checkpoint_store=store)
    server.add_run(run)
    at_step_2 = threading.Event()

    def objective(trial: optuna.Trial) -> float:
        ckpt = checkpoint.load(trial)
        start = 0 if ckpt is None else ckpt.step + 1
        trial.set_user_attr("starts", [*trial.user_attrs.get("starts", []), start])
        for step in range(start, 6):
            trial.report(float(step), step)
            if ckpt is None and step == 2 and trial.number == 0:
                at_step_2.set()
                # The driver asks it to save (its executor is going away) while it trains.
                assert wait_until(
                    lambda: trial.should_prune() is False and checkpoint.requested(trial), 30
                )
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, "step").write_text(str(step))
                checkpoint.save(trial, tmp, step=step)  # hands back when requested
        return 0.0

    spec = run.worker_spec(server.endpoint, heartbeat_interval=0.05)
    results: dict[str, int] = {}

    def work(executor: str) -> None:
        results[executor] = run_worker(spec, objective, info={"executor_id": executor})

    first = threading.Thread(target=work, args=("e1",))
    first.start()
    assert at_step_2.wait(30)
    second = threading.Thread(target=work, args=("e2",))
    second.start()
    run.decommission("e1")
    assert run.wait(60)
    first.join(30)
    second.join(30)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    handed = trials[0]
    assert handed.user_attrs["starts"] == [0, 3]  # saved at step 2, resumed at step 3
    assert handed.intermediate_values == {step: float(step) for step in range(6)}
    (resume,) = handed.system_attrs["optuna_spark:resumes"]
    assert resume["reason"].startswith("handed back: executor e1 is decommissioning")
    assert resume["last_step"] == resume["checkpoint_step"] == 2  # no step lost
    assert handed.system_attrs["optuna_spark:worker"]["executor_id"] == "e2"
