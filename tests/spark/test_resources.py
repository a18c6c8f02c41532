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
from optuna_spark import TrialResources
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


def _by_layers(trial: optuna.Trial) -> str:
    return "large" if trial.suggest_int("layers", 1, 16) > 8 else "small"


PROFILES = {"small": {"gpus": 1}, "large": {"gpus": 2}}


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (({}, _by_layers), {}, ValueError, "non-empty dict of named resources"),
        (({f"p{i}": {"cpus": 1} for i in range(9)}, _by_layers), {}, ValueError, "At most 8"),
        (({"small": {"gpus": 0.75}}, _by_layers), {}, ValueError, "Profile 'small': .*0.5"),
        (({"small": None}, _by_layers), {}, ValueError, "Profile 'small' must name"),
        (({"": {"gpus": 1}}, _by_layers), {}, ValueError, "non-empty strings"),
        ((PROFILES, "large"), {}, TypeError, "function of the trial"),
        ((PROFILES, _by_layers), {"n_workers": {"huge": 2}}, ValueError, r"\['huge'\]"),
        ((PROFILES, _by_layers), {"n_workers": 0}, ValueError, "positive int"),
        ((PROFILES, _by_layers), {"n_workers": {"small": True}}, ValueError, "positive int"),
    ],
)
def test_bad_trial_resources_are_refused_at_once(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        TrialResources(*args, **kwargs)


def test_trial_resources_need_driver_sampling_and_the_driver_coordinator() -> None:
    resources = TrialResources(PROFILES, _by_layers)
    with pytest.raises(ValueError, match="TrialResources needs sampling='driver'"):
        SparkExecutor(resources=resources, sampling="workers")
    with pytest.raises(ValueError, match="TrialResources needs coordinator='driver'"):
        SparkExecutor(resources=resources, coordinator="cluster")


def test_trial_resources_give_each_profile_its_workers() -> None:
    resources = TrialResources(PROFILES, _by_layers, n_workers={"large": 2})
    assert resources.workers(default=6) == {"small": 6, "large": 2}
    assert TrialResources(PROFILES, _by_layers, n_workers=3).workers(6) == {
        "small": 3,
        "large": 3,
    }


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_local_mode_cannot_schedule_trial_resources(spark: object) -> None:
    study = optuna.create_study()
    executor = SparkExecutor(spark, resources=TrialResources(PROFILES, _by_layers))  # type: ignore[arg-type]
    with pytest.raises(SparkSetupError, match=r"local mode .*Drop resources="):
        executor.optimize(study, _objectives.quadratic, n_trials=2)
    assert study.trials == []
