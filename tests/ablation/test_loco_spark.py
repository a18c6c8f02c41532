"""LOCO ablation on Spark: four concurrent workers, each (arm, repeat) exactly once."""

from __future__ import annotations

import collections
import os
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark.ablation import LOCOSampler
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
