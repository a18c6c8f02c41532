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
    stdout, _ = _run("keras_pruning.py", tmp_path, "--n-trials", "10")
    assert "trials: 10" in stdout
    assert "best validation accuracy:" in stdout
    # What the pruner compares is what the study maximizes: every trial reports, each
    # epoch, the validation accuracy that a complete trial returns at its last epoch.
    import optuna

    storage = f"sqlite:///{tmp_path}/keras_pruning.db"
    study = optuna.load_study(study_name="keras-digits", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for t in complete:
        assert t.intermediate_values[max(t.intermediate_values)] == pytest.approx(t.value)
    for t in study.trials:
        assert all(0.0 <= v <= 1.0 for v in t.intermediate_values.values())  # accuracies
    # Each pruned trial was worse than the median, at the step it was pruned, of the trials
    # completed when the driver decided (optuna_spark:pruned_at): it pruned the bad ones.
    import datetime
    import statistics

    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    for t in pruned:
        decided = datetime.datetime.fromisoformat(t.system_attrs["optuna_spark:pruned_at"])
        step = max(t.intermediate_values)
        others = [
            c.intermediate_values[step]
            for c in complete
            if c.datetime_complete is not None
            and c.datetime_complete <= decided
            and step in c.intermediate_values
        ]
        assert others, f"trial {t.number} was pruned with no completed trial to compare"
        best_so_far = max(t.intermediate_values.values())  # the study maximizes
        assert best_so_far < statistics.median(others), (t.number, step, others)


@pytest.mark.tensorflow
def test_ablation_housing(tmp_path: Path) -> None:
    stdout, _ = _run("ablation_housing.py", tmp_path, "--repeats", "2", "--epochs", "3")
    assert "arms x 2 repeats" in stdout
    assert "feature:area" in stdout and "validation MAE in thousands of dollars" in stdout
    base = next(line for line in stdout.splitlines() if line.split()[:1] == ["base"])
    assert "NaN" not in base and "nan" not in base
    assert (tmp_path / "ablation_housing.html").stat().st_size > 0


def test_ablation_beyond_loco(tmp_path: Path) -> None:
    stdout, _ = _run("ablation_beyond_loco.py", tmp_path, "--n-trials", "12", "--max-repeats", "6")
    assert "ablation path" in stdout and "feature ablation" in stdout
    import optuna

    storage = f"sqlite:///{tmp_path}/ablation_beyond_loco.db"
    path = optuna.load_study(study_name="ablation-path", storage=storage)
    tuned = optuna.load_study(study_name="tuning", storage=storage)
    # The path ends at the tuned configuration, with its value (the objective is deterministic).
    target = [t for t in path.trials if t.user_attrs["loco_arm"] == "target"]
    assert target and target[0].value == pytest.approx(tuned.best_value)
    features = optuna.load_study(study_name="features", storage=storage)
    arms = {t.user_attrs["loco_arm"] for t in features.trials}
    assert {"base", "feature:bmi", "pair:s1+s2", "pair:bmi+s5"} <= arms
    # Adaptive repeats: fewer trials than 6 fixed repeats of 13 arms.
    assert len(features.trials) < 13 * 6
