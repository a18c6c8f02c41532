"""Every example runs, as a user would run it (a fresh process, embedded Spark), at a small
size; its output says what the example promises. The examples share one flag vocabulary,
write what they make under ``outputs/``, and say which study they start or resume."""

from __future__ import annotations

import datetime
import importlib.util
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import optuna
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ALL = sorted(p.name for p in EXAMPLES.glob("*.py"))
#: The examples whose one study may be kept in a storage, and reopened by a second run.
ONE_STUDY = [
    "ablation_housing.py",
    "durable_trials.py",
    "keras_pruning.py",
    "pbt_keras.py",
    "pbt_torch.py",
    "quickstart.py",
]


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


def _load(example: str) -> ModuleType:
    """The example as a module, its ``main`` not run (importing one starts nothing)."""
    spec = importlib.util.spec_from_file_location(example.removesuffix(".py"), EXAMPLES / example)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bar_ends_full(stderr: str, label: str) -> int:
    """The total of the last progress bar labelled ``label``, which it reached."""
    (n, total), *_ = reversed(re.findall(rf"{re.escape(label)} \[.*?(\d+)/(\d+) \[", stderr))
    assert n == total, (label, n, total)
    return int(total)


# ---------------------------------------------------------------------------------------------
# Flags and studies, without Spark.


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", ALL)
def test_the_examples_share_one_flag_vocabulary(example: str) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / example), "--help"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out.stdout))
    assert {"--n-workers", "--storage", "--resume"} <= flags
    assert not flags & {"--workers", "--repeats", "--trials"}, flags


@pytest.mark.parametrize("example", ONE_STUDY)
def test_a_run_says_which_study_it_starts_or_resumes(
    example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_study = _load(example).open_study
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    study = open_study(False, study_name="s", storage=storage)
    assert f"Study 's' in {storage}: new." in capsys.readouterr().out
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    resumed = open_study(True, study_name="s", storage=storage)
    assert len(resumed.trials) == 3
    assert "resumed, 3 trials so far" in capsys.readouterr().out
    fresh = open_study(False, study_name="s", storage=storage)
    assert fresh.trials == []  # a run without --resume starts again, and says so
    assert "replaced the earlier run's (--resume continues it)" in capsys.readouterr().out


def test_the_ablations_are_replaced_when_the_tuning_found_another_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_study = _load("ablation_beyond_loco.py").open_study
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    ablation = open_study(False, made_for={"x": 1.0}, study_name="a", storage=storage)
    ablation.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert ablation.user_attrs["tuned"] == {"x": 1.0}
    capsys.readouterr()
    # --resume continues an ablation of the configuration that the tuning still finds best...
    assert len(open_study(True, made_for={"x": 1.0}, study_name="a", storage=storage).trials) == 2
    assert "resumed, 2 trials so far" in capsys.readouterr().out
    # ... and replaces one whose results are those of an earlier configuration.
    again = open_study(True, made_for={"x": 0.5}, study_name="a", storage=storage)
    assert again.trials == [] and again.user_attrs["tuned"] == {"x": 0.5}
    assert "replaced (it was for another tuned configuration)" in capsys.readouterr().out


@pytest.mark.parametrize("example", ONE_STUDY)
def test_study_names_keep_the_progress_bar_label_short(example: str) -> None:
    (name,) = re.findall(r'study_name="([^"]+)"', (EXAMPLES / example).read_text())
    assert len(name) <= 24


# ---------------------------------------------------------------------------------------------
# The examples, run.


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_quickstart(tmp_path: Path) -> None:
    stdout, stderr = _run("quickstart.py", tmp_path, "--n-trials", "8")
    assert "Study 'quickstart-breast-cancer' in sqlite:///outputs/quickstart.db: new." in stdout
    assert "trials: 8" in stdout
    assert "best accuracy: 0.9" in stdout
    assert (tmp_path / "outputs" / "quickstart.db").exists()
    # The embedded session starts quietly: the progress bar, and no Spark banner lines.
    assert "8/8" in stderr
    for noise in ("Setting default log level", "NativeCodeLoader", "SPARK_LOCAL_IP", " WARN "):
        assert noise not in stderr


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_durable_trials(tmp_path: Path) -> None:
    stdout, stderr = _run("durable_trials.py", tmp_path, "--n-trials", "4")
    assert "trials: 4" in stdout
    # The killed worker's trial resumed from its checkpoint, and reported each epoch once.
    assert "trial 0 lost its worker (worker lost: its connection to the driver closed" in stdout
    assert "after epoch 8; it resumed from that checkpoint and ended COMPLETE" in stdout
    assert "runs began at epochs [0, 9], 20 epochs reported, each once" in stdout
    assert "4/4" in stderr


@pytest.mark.spark
@pytest.mark.tensorflow
@pytest.mark.timeout(600)
def test_keras_pruning(tmp_path: Path) -> None:
    stdout, _ = _run("keras_pruning.py", tmp_path, "--n-trials", "10")
    assert "trials: 10" in stdout
    assert "best validation accuracy:" in stdout
    # What the pruner compares is what the study maximizes: every trial reports, each
    # epoch, the validation accuracy that a complete trial returns at its last epoch.
    storage = f"sqlite:///{tmp_path}/outputs/keras_pruning.db"
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


@pytest.mark.spark
@pytest.mark.tensorflow
@pytest.mark.timeout(600)
def test_ablation_housing(tmp_path: Path) -> None:
    stdout, stderr = _run("ablation_housing.py", tmp_path, "--n-repeats", "2", "--epochs", "3")
    assert "Study 'ablation-housing' in memory: new" in stdout
    assert "8 arms x 2 repeats = 16 trials" in stdout
    assert _bar_ends_full(stderr, "ablation-housing") == 16  # the bar knew its total
    assert "feature:area" in stdout and "validation MAE in thousands of dollars" in stdout
    base = next(line for line in stdout.splitlines() if line.split()[:1] == ["base"])
    assert "NaN" not in base and "nan" not in base
    assert (tmp_path / "outputs" / "ablation_housing.html").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]  # nothing else written


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_ablation_beyond_loco(tmp_path: Path) -> None:
    stdout, stderr = _run(
        "ablation_beyond_loco.py", tmp_path, "--n-trials", "12", "--max-repeats", "6"
    )
    assert "ablation path" in stdout and "feature ablation" in stdout
    for name in ("tuning", "ablation-path", "features"):
        assert f"Study {name!r} in sqlite:///outputs/ablation_beyond_loco.db: new." in stdout
    storage = f"sqlite:///{tmp_path}/outputs/ablation_beyond_loco.db"
    path = optuna.load_study(study_name="ablation-path", storage=storage)
    tuned = optuna.load_study(study_name="tuning", storage=storage)
    # The path ends at the tuned configuration, with its value (the objective is deterministic).
    target = [t for t in path.trials if t.user_attrs["loco_arm"] == "target"]
    assert target and target[0].value == pytest.approx(tuned.best_value)
    assert _bar_ends_full(stderr, "ablation-path") == len(path.trials)  # its total was known
    features = optuna.load_study(study_name="features", storage=storage)
    arms = {t.user_attrs["loco_arm"] for t in features.trials}
    assert {"base", "feature:bmi", "pair:s1+s2", "pair:bmi+s5"} <= arms
    # Adaptive repeats: fewer trials than 6 fixed repeats of 13 arms.
    assert len(features.trials) < 13 * 6


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_many_studies(tmp_path: Path) -> None:
    stdout, stderr = _run("many_studies.py", tmp_path, "--n-segments", "4", "--n-trials", "5")
    assert "4 studies in sqlite:///outputs/many_studies.db: new." in stdout
    assert stdout.count(": 5 trials, best MSE") == 4  # every segment got its own 5
    assert _bar_ends_full(stderr, "4 studies") == 20  # one bar over all of them
    storage = f"sqlite:///{tmp_path}/outputs/many_studies.db"
    assert sorted(optuna.get_all_study_names(storage)) == [f"segment-{k}" for k in range(4)]


def _pbt_output(stdout: str) -> tuple[int, int, int]:
    """(members, segments, exploits) from an example's report, and its schedule's length."""
    members, segments, exploits = map(
        int,
        re.search(r"population: (\d+) members, (\d+) segments, (\d+) exploits", stdout).groups(),  # type: ignore[union-attr]
    )
    return members, segments, exploits


@pytest.mark.spark
@pytest.mark.torch
@pytest.mark.timeout(600)
def test_pbt_torch(tmp_path: Path) -> None:
    args = ("--population", "4", "--n-generations", "3", "--epochs", "1")
    stdout, _ = _run("pbt_torch.py", tmp_path, *args)
    members, segments, _ = _pbt_output(stdout)
    assert members == 4 and segments <= 12  # the population ended the study by itself
    assert len(re.findall(r"^  segment \d+: trial", stdout, re.M)) == 3  # the schedule
    best = float(re.search(r"best member \d+: accuracy ([\d.]+)", stdout).group(1))  # type: ignore[union-attr]
    assert best > 0.5  # a network that learned the digits (chance: 0.1)
    again, _ = _run("pbt_torch.py", tmp_path, *args, "--resume")  # a finished population
    assert f"resumed, {segments} trials so far" in again  # it was over: nothing more ran
    assert _pbt_output(again)[:2] == (4, segments)


@pytest.mark.spark
@pytest.mark.tensorflow
@pytest.mark.timeout(600)
def test_pbt_keras(tmp_path: Path) -> None:
    stdout, _ = _run(
        "pbt_keras.py", tmp_path, "--population", "4", "--n-generations", "3", "--epochs", "1"
    )
    members, segments, _ = _pbt_output(stdout)
    assert members == 4 and segments <= 12
    best = float(re.search(r"best member \d+: accuracy ([\d.]+)", stdout).group(1))  # type: ignore[union-attr]
    assert best > 0.5
