"""Explore: perturbed values stay within their distribution; categoricals only resample."""

from __future__ import annotations

import random

import pytest
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_spark.pbt._explore import explore
from optuna_spark.pbt._explore import perturb_float
from optuna_spark.pbt._explore import perturb_int


@pytest.mark.parametrize(
    ("value", "distribution", "factor", "expected"),
    [
        (0.5, FloatDistribution(0.0, 1.0), 1.2, 0.6),
        (0.9, FloatDistribution(0.0, 1.0), 1.2, 1.0),  # clipped to the bound
        (0.01, FloatDistribution(0.01, 1.0, log=True), 0.8, 0.01),
        (0.5, FloatDistribution(0.0, 1.0, step=0.25), 1.2, 0.5),  # 0.6 onto the grid
        (0.75, FloatDistribution(0.0, 1.0, step=0.25), 2.0, 1.0),  # the grid's top
    ],
)
def test_a_float_is_perturbed_within_its_bounds_and_on_its_step(
    value: float, distribution: FloatDistribution, factor: float, expected: float
) -> None:
    new = perturb_float(value, distribution, factor)
    assert new == pytest.approx(expected)
    assert distribution._contains(distribution.to_internal_repr(new))


@pytest.mark.parametrize(
    ("value", "distribution", "factor", "expected"),
    [
        (10, IntDistribution(1, 100), 1.2, 12),
        (1, IntDistribution(1, 100), 1.2, 2),  # rounding would keep it: one step up
        (2, IntDistribution(1, 100), 0.8, 1),  # one step down
        (1, IntDistribution(1, 100), 0.8, 1),  # the bound
        (90, IntDistribution(0, 95, step=5), 1.2, 95),
        (20, IntDistribution(0, 100, step=10), 1.2, 30),  # 24 rounds to 20: a step up
    ],
)
def test_an_int_is_perturbed_within_its_bounds_and_on_its_step(
    value: int, distribution: IntDistribution, factor: float, expected: int
) -> None:
    assert perturb_int(value, distribution, factor) == expected


def test_categoricals_are_kept_unless_resampled_and_resampling_draws_anew() -> None:
    distributions = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "layers": IntDistribution(1, 8),
        "optimizer": CategoricalDistribution(["sgd", "adam"]),
    }
    params = {"lr": 0.1, "layers": 4, "optimizer": "sgd"}
    drawn: list[str] = []

    def resample(name: str, distribution: object) -> object:
        drawn.append(name)
        return {"lr": 0.5, "layers": 7, "optimizer": "adam"}[name]

    kept = explore(params, distributions, random.Random(0), resample, 0.0, (0.8, 1.2))
    assert drawn == [] and kept["optimizer"] == "sgd"
    assert kept["lr"] in (pytest.approx(0.08), pytest.approx(0.12))
    assert kept["layers"] in (3, 5)
    fresh = explore(params, distributions, random.Random(0), resample, 1.0, (0.8, 1.2))
    assert fresh == {"lr": 0.5, "layers": 7, "optimizer": "adam"}
    assert drawn == ["lr", "layers", "optimizer"]
