"""Explore: a copied member's hyperparameters, each perturbed by a factor or resampled."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


def explore(
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    rng: random.Random,
    resample: Callable[[str, BaseDistribution], Any],
    resample_probability: float,
    factors: Sequence[float],
) -> dict[str, Any]:
    """New values for ``params``: each, with probability ``resample_probability``, drawn
    again from its distribution (``resample``); otherwise a number is multiplied by one of
    ``factors`` (kept within its bounds and on its step) and a categorical is kept."""
    out = {}
    for name, value in params.items():
        distribution = distributions[name]
        if rng.random() < resample_probability:
            out[name] = resample(name, distribution)
        elif isinstance(distribution, FloatDistribution):
            out[name] = perturb_float(float(value), distribution, rng.choice(factors))
        elif isinstance(distribution, IntDistribution):
            out[name] = perturb_int(int(value), distribution, rng.choice(factors))
        else:
            out[name] = value
    return out


def perturb_float(value: float, distribution: FloatDistribution, factor: float) -> float:
    """``value * factor`` within ``distribution``'s bounds, on its step if it has one."""
    low, high, step = distribution.low, distribution.high, distribution.step
    new = min(max(value * factor, low), high)
    if step is not None:
        new = low + round((new - low) / step) * step
        new = min(new, low + math.floor((high - low) / step + 1e-9) * step)
    return float(new)


def perturb_int(value: int, distribution: IntDistribution, factor: float) -> int:
    """``value * factor`` rounded onto ``distribution``'s step, within its bounds; a small
    value that rounding would leave as it is moves one step in the factor's direction."""
    low, high, step = distribution.low, distribution.high, distribution.step
    new = low + round((value * factor - low) / step) * step
    if new == value and factor != 1:
        new = value + (step if factor > 1 else -step)
    top = low + (high - low) // step * step
    return int(min(max(new, low), top))
