"""Pairs left out together: their interaction, and whether they are redundant."""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

#: ``finding`` of a pair whose joint removal matters, costs more than both single removals
#: added together (the interaction's interval), while neither single removal is significant
#: or the singles add up to less than half of it.
REDUNDANT = "redundant: keep one"
#: ``finding`` of a pair whose interaction's interval excludes 0 (and is not redundant).
INTERACTION = "interaction"


def add_interactions(
    rows: Sequence[dict[str, Any]],
    values: Mapping[str, Mapping[Any, Sequence[float]]],
    left_out: Mapping[str, tuple[str, ...]],
    reference: str,
    confidence: float,
    sign: float,
) -> None:
    """Fill the pair columns of the report's ``rows`` (in place); NaN and ``""`` elsewhere.

    The interactions' intervals are simultaneous over the pairs (Bonferroni: each at level
    ``1 - (1 - confidence) / n_pairs``), so that a study with many pairs does not report
    interactions by chance; ``confidence`` already carries the adaptive repeats' looks.

    Args:
        rows: The report's rows, with ``diff``, ``significant`` and ``importance`` set.
        values: Each arm's completed values, by seed.
        left_out: The components each arm leaves out.
        reference: The reference arm's label.
        confidence: Level of the interaction's interval.
        sign: ``+1`` when a larger ``diff`` means a larger importance, else ``-1``.
    """
    single = {lo[0]: label for label, lo in left_out.items() if len(lo) == 1}
    by_label = {r["arm"]: r for r in rows}
    n_pairs = sum(1 for r in rows if len(left_out.get(r["arm"], ())) == 2)
    level = 1.0 - (1.0 - confidence) / max(n_pairs, 1)
    for row in rows:
        row.update(
            sum_of_singles=math.nan,
            interaction=math.nan,
            interaction_ci_low=math.nan,
            interaction_ci_high=math.nan,
            finding="",
        )
        pair = left_out.get(row["arm"], ())
        if row["arm"] == reference or len(pair) != 2 or not all(p in single for p in pair):
            continue
        x, y = (by_label[single[p]] for p in pair)
        row["sum_of_singles"] = x["diff"] + y["diff"]
        d = _differences(values, (row["arm"], single[pair[0]], single[pair[1]], reference))
        if len(d):
            row["interaction"] = float(d.mean())
        if len(d) >= 2:
            low, high = _interval(d, level)
            row.update(interaction_ci_low=low, interaction_ci_high=high)
        row["finding"] = _finding(row, x, y, sign)


def _differences(
    values: Mapping[str, Mapping[Any, Sequence[float]]], arms: tuple[str, str, str, str]
) -> np.ndarray:
    """The interaction seed by seed: ``pair - a - b + reference`` over the seeds all four ran."""
    pair, a, b, reference = arms
    keys = [k for k in values.get(pair, {}) if all(k in values.get(lb, {}) for lb in arms[1:])]

    def mean(label: str, key: Any) -> float:
        return float(np.mean(values[label][key]))

    d = np.array([mean(pair, k) - mean(a, k) - mean(b, k) + mean(reference, k) for k in keys])
    scale = max([1.0] + [abs(v) for lb in arms for vs in values.get(lb, {}).values() for v in vs])
    d[np.abs(d) <= 1e-9 * scale] = 0.0  # rounding, not an interaction
    return d


def _finding(
    row: Mapping[str, Any], x: Mapping[str, Any], y: Mapping[str, Any], sign: float
) -> str:
    """What the pair's row says: redundant, an interaction, or nothing (``""``)."""
    harmful = row["significant"] and sign * row["diff"] > 0
    neither = not x["significant"] and not y["significant"]
    bounds = sign * row["interaction_ci_low"], sign * row["interaction_ci_high"]
    covers = min(bounds) > 0  # the pair costs more than the two single removals added
    mostly = sign * row["sum_of_singles"] < 0.5 * sign * row["diff"]
    if harmful and covers and (neither or mostly):
        return REDUNDANT
    if row["interaction_ci_low"] > 0 or row["interaction_ci_high"] < 0:
        return INTERACTION
    return ""


def _interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats

    mean = float(d.mean())
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))):
        return mean, mean
    result = stats.ttest_1samp(d, 0.0)
    interval = result.confidence_interval(confidence_level=confidence)
    return float(interval.low), float(interval.high)
