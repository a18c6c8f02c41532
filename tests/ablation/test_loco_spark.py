"""Ablation on Spark: four concurrent workers, each (arm, repeat) exactly once, adaptive
repeats and the ablation path included."""

from __future__ import annotations

import collections
import os
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark.ablation import AblationPath
from optuna_spark.ablation import AblationSampler
from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablation_path_report
from optuna_spark.ablation import ablation_report
from tests.ablation import _objectives as o

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def test_each_arm_and_repeat_exactly_once_on_four_spark_workers(spark: Any) -> None:
    sampler = LOCOSampler(
        features=o.FEATURES,
        layer_groups={"head": "head_"},
        components=["augment"],
        n_repeats=3,
        seed=0,
    )
    study = optuna.create_study(sampler=sampler)
    SparkExecutor(spark, n_workers=4).optimize(study, o.slow_loss)  # no n_trials: ends by itself

    trials = study.trials
    assert len(trials) == sampler.n_trials == 18
    pairs = collections.Counter((t.params["loco_arm"], t.params["loco_repeat"]) for t in trials)
    assert set(pairs) == {(arm, r) for arm in sampler.arms for r in range(3)}
    assert set(pairs.values()) == {1}
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs["pid"] != os.getpid() for t in trials)  # ran in Spark workers
    assert all("loco_surplus" not in t.user_attrs for t in trials)
    assert all("optuna_spark:interrupted" not in t.system_attrs for t in trials)
    # The four workers ran at once: each of the job's four tasks ran trials.
    assert {t.system_attrs["optuna_spark:worker"]["partition"] for t in trials} == {0, 1, 2, 3}

    report = ablation_report(study).set_index("arm")
    assert list(report["n"]) == [3] * len(sampler.arms)
    assert report.loc["feature:area", "significant"]


def test_pairs_and_adaptive_repeats_exactly_once_on_four_spark_workers(spark: Any) -> None:
    sampler = LOCOSampler(
        features=o.FEATURES, pairs=[("area", "floors")], n_repeats=(2, 6), futility=False, seed=0
    )
    study = optuna.create_study(sampler=sampler)
    SparkExecutor(spark, n_workers=4).optimize(study, o.slow_loss)

    trials = study.trials
    pairs = collections.Counter((t.params["loco_arm"], t.params["loco_repeat"]) for t in trials)
    assert set(pairs.values()) == {1}
    assert all(t.state == TrialState.COMPLETE for t in trials)  # no surplus, nothing lost
    repeats = collections.Counter(arm for arm, _ in pairs)
    assert repeats["feature:noise"] == 6  # no effect: runs to the maximum
    assert repeats["base"] == 6
    assert {t.system_attrs["optuna_spark:worker"]["partition"] for t in trials} == {0, 1, 2, 3}
    report = ablation_report(study).set_index("arm")
    assert report.loc["feature:area", "significant"]
    assert report.loc["pair:area+floors", "significant"]
    assert report.loc["feature:noise", "stopped"] == "max repeats"


def path_objective(trial: optuna.trial.BaseTrial) -> float:
    """A tuning objective, unchanged: the ablation path answers its suggestions."""
    x = trial.suggest_float("x", -10.0, 10.0)
    depth = trial.suggest_int("depth", 1, 8)
    act = trial.suggest_categorical("act", ["relu", "tanh"])
    trial.set_user_attr("pid", os.getpid())
    return (x - 1.0) ** 2 + 0.5 * abs(depth - 4) + (0.25 if act == "tanh" else 0.0)


def test_the_ablation_path_of_a_tuned_study_on_spark(spark: Any) -> None:
    tuned = optuna.create_study()
    tuned.enqueue_trial({"x": 6.0, "depth": 1, "act": "tanh"})  # the "default"
    tuned.enqueue_trial({"x": 1.0, "depth": 4, "act": "relu"})  # the best
    tuned.optimize(path_objective, n_trials=2)

    path = AblationPath.from_study(tuned)
    study = optuna.create_study(sampler=AblationSampler(path, n_repeats=2, seed=0))
    SparkExecutor(spark, n_workers=4).optimize(study, path_objective)

    assert all(t.user_attrs["pid"] != os.getpid() for t in study.trials)
    pairs = collections.Counter((t.user_attrs["loco_arm"], t.user_attrs["loco_repeat"])
                                for t in study.trials)  # fmt: skip
    assert set(pairs.values()) == {1}
    report = ablation_path_report(study)
    assert list(report["param"]) == ["", "x", "depth", "act"]
    assert list(report["gain"]) == pytest.approx([0.0, 25.0, 1.5, 0.25])
    assert report["share"].sum() == pytest.approx(1.0)
    assert report["mean"].iloc[-1] == pytest.approx(tuned.best_value)
