"""Adaptive repeats: when an arm's paired difference from the reference is decided.

With ``n_repeats=(low, high)`` every arm runs ``low`` repeats; after that an arm gets more only
while its difference from the reference arm is undecided. An arm is *looked at* when its number
of completed pairs (arm and reference, same seed) reaches a point of a fixed schedule from
``low`` to ``high``, each about 1.6 times the one before (3, 5, 8, 13, 20 for ``(3, 20)``):
``K`` looks in all, a group-sequential design. At each look, a paired t-test runs at level
``alpha / (m * K)``, ``m`` being the number of arms compared with the reference:

- *significant* when its p-value is below that level;
- *negligible* (only with ``min_effect``, checked first) when the confidence interval at that
  level lies inside ``(-min_effect, min_effect)``: an equivalence test;
- *futile* (with ``futility=True``) when, were the effect what it looks like so far, the
  chance that ``high`` pairs would call it significant (at the last look's level) is below 10%:
  conditional power, or stochastic curtailment (from the second look on);
- *max repeats* when ``high`` pairs completed without any of these.

By the union bound over looks and arms, the probability that any arm is ever wrongly called
significant (or wrongly negligible) stays below ``alpha``, however the looks fall: this is
conservative, and honest under optional stopping. A futility stop only ever makes an arm
*not* significant, so it cannot add false discoveries (it can cost power, which the
benchmark measures). The report applies the same correction (p-values times ``K``, then Holm
across arms).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Why an arm got no more repeats.
SIGNIFICANT = "significant"
NEGLIGIBLE = "negligible"
FUTILE = "futile"
MAX = "max repeats"

#: An arm is futile when the chance that the most repeats would decide it falls below this.
FUTILITY_POWER = 0.1

#: Each look comes after about this many times the completed pairs of the one before.
_GROWTH = 1.6


def look_points(low: int, high: int) -> list[int]:
    """The numbers of completed pairs at which an arm is looked at: ``low`` ... ``high``.

    Example:

        .. testcode::

            from optuna_spark.ablation._sequential import look_points

            assert look_points(3, 20) == [3, 5, 8, 13, 20]
    """
    points = [low]
    while points[-1] < high:
        points.append(min(high, max(points[-1] + 1, math.ceil(points[-1] * _GROWTH))))
    return points


@dataclasses.dataclass(frozen=True)
class Decision:
    """Why an arm stopped getting repeats, and when.

    Attributes:
        reason: ``"significant"``, ``"negligible"``, ``"futile"`` or ``"max repeats"``.
        n: How many completed pairs the decision saw.
        p_value: The look's p-value times the number of looks (capped at 1).
    """

    reason: str
    n: int
    p_value: float

    def to_attr(self) -> dict[str, Any]:
        return {"reason": self.reason, "n": self.n, "p_value": self.p_value}

    @classmethod
    def from_attr(cls, value: Mapping[str, Any]) -> Decision:
        return cls(str(value["reason"]), int(value["n"]), float(value["p_value"]))


def paired_differences(arm: Mapping[int, float], reference: Mapping[int, float]) -> np.ndarray:
    """The arm's values minus the reference's, repeat by repeat, where both completed."""
    return np.array([arm[r] - reference[r] for r in sorted(arm) if r in reference], dtype=float)


def paired_test(d: np.ndarray, level: float) -> tuple[float, float, float]:
    """Two-sided one-sample t-test of ``d`` against 0: ``(p, ci_low, ci_high)`` at ``1 - level``.

    Differences that are all equal (deterministic training) give ``p = 0`` for a non-zero
    difference and 1 for none, and a zero-width interval.
    """
    from scipy import stats

    n = len(d)
    mean = float(d.mean())
    tol = 1e-12 * max(1.0, float(np.max(np.abs(d))))
    if n < 2:
        return math.nan, math.nan, math.nan
    if np.ptp(d) <= tol:
        return (0.0 if abs(mean) > tol else 1.0), mean, mean
    result = stats.ttest_1samp(d, 0.0)
    interval = result.confidence_interval(confidence_level=1.0 - level)
    return float(result.pvalue), float(interval.low), float(interval.high)


def decide(
    d: np.ndarray,
    *,
    low: int,
    high: int,
    alpha: float,
    n_arms: int,
    min_effect: float | None,
    futility: bool,
    settled: bool = False,
) -> Decision | None:
    """The decision at this look, or ``None`` if the arm needs more repeats.

    Args:
        d: The completed paired differences.
        low: The repeats every arm runs before any decision.
        high: The most repeats an arm runs.
        alpha: Family-wise error rate over every arm and look.
        n_arms: How many arms are compared with the reference.
        min_effect: Differences smaller than this (in objective units) are negligible;
            ``None`` never calls an arm negligible.
        futility: Whether to stop arms that ``high`` repeats would very likely not decide.
        settled: Every repeat the arm may get has finished (some failed): decide now.
    """
    n = len(d)
    points = look_points(low, high)
    if n not in points and not settled:
        return None
    looks = len(points)
    m = max(n_arms, 1)
    level = alpha / (m * looks)
    p, ci_low, ci_high = paired_test(d, level)
    p_seq = min(1.0, p * looks) if math.isfinite(p) else math.nan
    if min_effect is not None and -min_effect < ci_low and ci_high < min_effect:
        return Decision(NEGLIGIBLE, n, p_seq)  # even if it differs from 0: too little to matter
    if math.isfinite(p) and p < level:
        return Decision(SIGNIFICANT, n, p_seq)
    if n >= high or settled:
        return Decision(MAX, n, p_seq)
    if futility and n > low and _futile(d, high, level):  # not on the first look's few
        return Decision(FUTILE, n, p_seq)
    return None


def _futile(d: np.ndarray, high: int, level: float) -> bool:
    """Whether ``high`` pairs would very likely not call the arm significant.

    Conditional power: were the effect what it looks like now, the chance that the test of
    ``high`` pairs (at ``level``, two-sided) rejects. Below :data:`FUTILITY_POWER`: futile.
    """
    from scipy import stats

    n = len(d)
    sigma = float(d.std(ddof=1))
    if sigma == 0.0 or n >= high:
        return False  # deterministic: the t-test has decided already
    effect = abs(float(d.mean()))
    critical = float(stats.t.ppf(1.0 - level / 2.0, high - 1)) * sigma * math.sqrt(high)
    # The sum of ``high`` differences: ``n`` seen, ``high - n`` to come with mean ``effect``.
    z = (high * effect - critical) / (sigma * math.sqrt(high - n))
    return float(stats.norm.cdf(z)) < FUTILITY_POWER
