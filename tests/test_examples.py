"""Every example runs, as a user would run it (a fresh process, embedded Spark), at a small
size; its output says what the example promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]


def _run(example: str, tmp_path: Path, *args: str) -> tuple[str, str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        cwd=tmp_path,  # what an example writes stays out of the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout, out.stderr


def test_quickstart(tmp_path: Path) -> None:
    stdout, stderr = _run("quickstart.py", tmp_path, "--n-trials", "8")
    assert "trials: 8" in stdout
    assert "best accuracy: 0.9" in stdout
    assert (tmp_path / "quickstart.db").exists()
    # The embedded session starts quietly: the progress bar, and no Spark banner lines.
    assert "8/8" in stderr
    for noise in ("Setting default log level", "NativeCodeLoader", "SPARK_LOCAL_IP", " WARN "):
        assert noise not in stderr


@pytest.mark.tensorflow
def test_keras_pruning(tmp_path: Path) -> None:
    stdout, _ = _run("keras_pruning.py", tmp_path, "--n-trials", "6")
    assert "trials: 6" in stdout
    assert "best validation accuracy:" in stdout


@pytest.mark.tensorflow
def test_ablation_housing(tmp_path: Path) -> None:
    stdout, _ = _run("ablation_housing.py", tmp_path, "--repeats", "2", "--epochs", "3")
    assert "arms x 2 repeats" in stdout
    assert "feature:area" in stdout and "validation MAE in thousands of dollars" in stdout
    assert (tmp_path / "ablation_housing.html").stat().st_size > 0
