"""``SparkExecutor(resources=...)``: validation, and a clear refusal in local mode.

The resources themselves are scheduled by a real cluster manager: see
``tests/cluster/test_standalone.py``.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from optuna_spark import SparkExecutor
from optuna_spark import SparkSetupError
from optuna_spark._spark._resources import check_resources
from tests.spark import _objectives


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({}, "non-empty dict"),
        ("cpus=4", "non-empty dict"),
        ({"cpus": 0}, "positive number"),
        ({"gpus": -1}, "positive number"),
        ({"cpus": float("nan")}, "positive number"),
        ({"cpus": True}, "positive number"),
        ({"cpus": 1.5}, "whole number"),
        ({"gpus": 0.75}, "fraction of at most 0.5"),
        ({"gpus": 1.5}, "fraction of at most 0.5"),
        ({1: 2}, "strings"),
    ],
)
def test_bad_resources_are_refused_at_once(resources: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SparkExecutor(resources=resources)


def test_resources_keep_their_amounts() -> None:
    assert check_resources({"cpus": 4, "gpus": 0.5, "fpga": 1}) == {
        "cpus": 4.0,
        "gpus": 0.5,
        "fpga": 1.0,
    }


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_local_mode_cannot_schedule_resource_profiles(spark: object) -> None:
    study = optuna.create_study()
    executor = SparkExecutor(spark, n_workers=2, resources={"cpus": 2})  # type: ignore[arg-type]
    with pytest.raises(SparkSetupError, match=r"local mode \(local\[4,4\]\).*Drop resources="):
        executor.optimize(study, _objectives.quadratic, n_trials=2)
    assert study.trials == []
    # Nothing is left behind: the same study runs at once without resources.
    SparkExecutor(spark, n_workers=2).optimize(study, _objectives.quadratic, n_trials=2)  # type: ignore[arg-type]
    assert len(study.trials) == 2
