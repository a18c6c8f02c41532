"""The embedded session reports a lost worker in one line, not a Java stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    optuna_lines = [line for line in lines if line.startswith("[I ")]
    assert len(optuna_lines) == 5  # "A new study created", then one line per trial
    assert sum("finished with value" in line for line in optuna_lines) == 4
    others = [line for line in lines if line not in optuna_lines]
    # Nothing from Spark, log4j or Hadoop (a loopback warning, the log level, native
    # libraries), nor the JVM's own notice of the incubator module Spark's launcher adds.
    assert others == [], lines
