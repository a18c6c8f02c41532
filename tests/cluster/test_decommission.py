"""Losing an executor on a standalone cluster: a worker sent SIGPWR (graceful
decommissioning: its trials save, hand themselves back and resume on the other worker, losing
at most one step each), and an executor's JVM killed (its trials resume from their last
checkpoints)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._helpers import wait_until
from tests._standalone import executors_of

pytestmark = [pytest.mark.spark, pytest.mark.cluster, pytest.mark.timeout(400)]


def _start_driver(master: str, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    marks, checkpoints = tmp_path / "marks", tmp_path / "checkpoints"
    marks.mkdir()
    checkpoints.mkdir()
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    root = Path(__file__).resolve().parents[2]
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    program = [sys.executable, "-m", "tests.cluster._decommission_driver", master, storage]
    driver = subprocess.Popen(
        [*program, str(checkpoints), str(marks)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return driver, marks


def _finish(driver: subprocess.Popen[str]) -> list[dict[str, Any]]:
    try:
        out, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, err[-4000:]
    trials: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    for t in trials:
        assert t["steps"] == list(range(40))  # each step reported once
    return trials


def _trials_after(
    cluster: tuple[str, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
    fault: Callable[[list[subprocess.Popen[bytes]]], None],
) -> list[dict[str, Any]]:
    """The driver's trials, once ``fault`` hit the cluster's processes (master, worker 0,
    worker 1) after every trial started (two on each worker's executor)."""
    master, procs = cluster
    driver, marks = _start_driver(master, tmp_path)
    try:
        assert wait_until(lambda: len(list(marks.iterdir())) == 4, 240), "trials never ran"
        fault(procs)
    finally:
        trials = _finish(driver)
    return trials


def test_a_decommissioned_workers_trials_resume_elsewhere_with_at_most_one_step_lost(
    decommissioning_cluster: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    # Worker 0 is told to go.
    trials = _trials_after(
        decommissioning_cluster, tmp_path, lambda procs: os.kill(procs[1].pid, signal.SIGPWR)
    )
    handed = [t for t in trials if t["resumes"]]
    assert handed, "no trial was handed back"
    for t in handed:
        (resume,) = t["resumes"]
        assert "is decommissioning" in resume["reason"]
        assert resume["last_step"] - resume["checkpoint_step"] <= 1  # at most one step lost
        assert t["starts"] == [0, resume["checkpoint_step"] + 1]
        assert t["executor"] != resume["worker"]["executor_id"]  # resumed on the other one


def test_an_executor_jvm_killed_mid_trial_its_trials_resume_from_their_checkpoints(
    decommissioning_cluster: tuple[str, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    def kill_the_executor(procs: list[subprocess.Popen[bytes]]) -> None:
        executors = executors_of([procs[1].pid])
        assert executors, "worker 0 runs no executor"
        os.kill(executors[0], signal.SIGKILL)  # the executor's JVM, and its Python workers with it

    trials = _trials_after(decommissioning_cluster, tmp_path, kill_the_executor)
    resumed = [t for t in trials if t["resumes"]]
    assert resumed, "no trial lost its executor"
    for t in resumed:
        (resume,) = t["resumes"]
        assert resume["reason"].startswith("worker lost")
        assert t["starts"] == [0, resume["checkpoint_step"] + 1]  # from its last checkpoint
