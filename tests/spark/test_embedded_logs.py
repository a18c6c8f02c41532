"""The embedded session reports a lost worker in one line, not a Java stack trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests._helpers import wait_until

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]

_SCRIPT = """
import os, sys, optuna
from optuna_spark import SparkExecutor
optuna.logging.set_verbosity(optuna.logging.WARNING)
marker = sys.argv[1]
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)  # the Python worker dies in the middle of the trial
    return x
study = optuna.create_study()
SparkExecutor(n_workers=2).optimize(study, objective, n_trials=4)
print("STATES", " ".join(t.state.name for t in study.trials))
"""


def _run(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` as a fresh driver program with an embedded session, as a user runs one."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("SPARK_LOCAL_IP", None)
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=200,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return out


def test_a_worker_crash_is_one_line_on_the_driver(tmp_path: Path) -> None:
    out = _run(_SCRIPT, tmp_path, str(tmp_path / "died"))
    assert out.stdout.strip() == "STATES COMPLETE FAIL COMPLETE COMPLETE"
    lines = out.stderr.splitlines()
    lost = [line for line in lines if "worker lost" in line]
    assert len(lost) == 1 and lost[0].startswith("Trial 1 failed: worker lost:"), lines
    java = [line for line in lines if line.lstrip().startswith("at ") or "Exception" in line]
    assert java == [], "\n".join(lines)


_FIRST_RUN = """
import optuna
from optuna_spark import SparkExecutor

def objective(trial):
    return (trial.suggest_float("x", -10, 10) - 2) ** 2

study = optuna.create_study()
SparkExecutor(n_workers=2).optimize(study, objective, n_trials=4)
"""


def test_a_first_run_prints_only_what_optuna_prints(tmp_path: Path) -> None:
    """A newcomer's first embedded run, with Optuna's default INFO logging: its stderr is
    Optuna's own lines, nothing else."""
    out = _run(_FIRST_RUN, tmp_path)
    lines = out.stderr.splitlines()
    # Before anything of Spark, what is about to take seconds.
    assert lines[1] == "optuna-spark: starting an embedded Spark session (local[2,4])..."
    del lines[1]
    optuna_lines = [line for line in lines if line.startswith("[I ")]
    assert len(optuna_lines) == 5  # "A new study created", then one line per trial
    assert sum("finished with value" in line for line in optuna_lines) == 4
    others = [line for line in lines if line not in optuna_lines]
    # Nothing from Spark, log4j or Hadoop (a loopback warning, the log level, native
    # libraries), nor the JVM's own notice of the incubator module Spark's launcher adds.
    assert others == [], lines


_PRINTS = """
import optuna
from optuna_spark import SparkExecutor

optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    print(f"hello-from-trial-{trial.number}")
    return trial.suggest_float("x", 0, 1)

study = optuna.create_study()
SparkExecutor(n_workers=2).optimize(study, objective, n_trials=4)
quiet = optuna.create_study()
SparkExecutor(n_workers=2, log_to_driver=False).optimize(quiet, objective, n_trials=4)
print("DONE")
"""


def test_every_line_an_objective_prints_reaches_the_terminal_once(tmp_path: Path) -> None:
    # On embedded Spark the executors' streams are this terminal: the echo is the one copy.
    out = _run(_PRINTS, tmp_path)
    terminal = (out.stdout + out.stderr).splitlines()
    hellos = [line for line in terminal if "hello-from-trial" in line]
    assert sorted(hellos) == [f"[trial {n}] hello-from-trial-{n}" for n in range(4)], terminal
    assert out.stdout.splitlines()[-1] == "DONE"  # log_to_driver=False: no copy at all


_INTERRUPTED_START = """
import sys, optuna
from optuna_spark import SparkExecutor
study = optuna.create_study()
SparkExecutor(n_workers=2).optimize(study, lambda t: t.suggest_float("x", 0, 1), n_trials=4)
"""


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def test_ctrl_c_while_spark_starts_ends_quietly_and_leaves_no_process(tmp_path: Path) -> None:
    marker = f"OPTUNA_SPARK_TEST_RUN={uuid.uuid4().hex}"
    key, value = marker.split("=")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, key: value}
    env.pop("SPARK_LOCAL_IP", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_START],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    while first.startswith("[I "):  # Optuna's "A new study created"
        first = proc.stderr.readline()
    assert first.startswith("optuna-spark: starting an embedded Spark session")
    proc.send_signal(signal.SIGINT)  # while the JVM starts
    rest = proc.stderr.read()
    assert proc.wait(60) != 0
    lines = rest.strip().splitlines()
    assert "KeyboardInterrupt" in rest and "py4j" not in rest and len(lines) < 15, rest
    assert wait_until(lambda: _processes_with(marker) == [], timeout=60), "a JVM was left"
