"""The report's statistics: an arm's spread, and its difference from the reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def describe(values: Sequence[float], confidence: float) -> dict[str, Any]:
    """``n``, ``mean``, ``std`` and the mean's Student-t interval (``ci_low``, ``ci_high``)."""
    n = len(values)
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    low, high = t_interval(mean, std, n, confidence)
    return {"n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def t_interval(mean: float, std: float, n: int, confidence: float) -> tuple[float, float]:
    """The Student-t interval of a mean (NaN with fewer than two values)."""
    if n < 2 or not math.isfinite(std):
        return math.nan, math.nan
    if std == 0.0:
        return mean, mean
    from scipy import stats

    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return float(low), float(high)


def compare(
    arm: dict[Any, list[float]], base: dict[Any, list[float]], confidence: float
) -> dict[str, Any]:
    """The arm against the base: paired by seed when possible, else Welch."""
    from scipy import stats

    nan = math.nan
    keys = [k for k in arm if k in base]
    x = np.array([v for vs in arm.values() for v in vs])
    y = np.array([v for vs in base.values() for v in vs])
    if len(x) == 0 or len(y) == 0:
        return {"diff": nan, "diff_ci_low": nan, "diff_ci_high": nan, "test": "",
                "n_pairs": len(keys), "p_value": nan}  # fmt: skip
    diff = float(x.mean() - y.mean())
    tol = 1e-12 * max(1.0, float(np.max(np.abs(x))), float(np.max(np.abs(y))))  # rounding
    out: dict[str, Any] = {"diff": diff, "diff_ci_low": nan, "diff_ci_high": nan, "test": "",
                           "n_pairs": len(keys), "p_value": nan}  # fmt: skip
    if len(keys) >= 2:
        d = np.array([np.mean(arm[k]) - np.mean(base[k]) for k in keys])
        out.update(diff=float(d.mean()), test="paired")
        if np.ptp(d) <= tol:  # deterministic: no spread to test against
            out.update(diff_ci_low=out["diff"], diff_ci_high=out["diff"])
            out["p_value"] = 0.0 if abs(out["diff"]) > tol else 1.0
            return out
        result = stats.ttest_1samp(d, 0.0)
    elif len(x) >= 2 and len(y) >= 2:
        out["test"] = "welch"
        if np.ptp(x) <= tol and np.ptp(y) <= tol:
            out.update(diff_ci_low=diff, diff_ci_high=diff)
            out["p_value"] = 0.0 if abs(diff) > tol else 1.0
            return out
        result = stats.ttest_ind(x, y, equal_var=False)
    else:
        return out
    interval = result.confidence_interval(confidence_level=confidence)
    out.update(
        diff_ci_low=float(interval.low),
        diff_ci_high=float(interval.high),
        p_value=float(result.pvalue),
    )
    return out


def combined_t_interval(
    mean: np.ndarray,
    parts: Sequence[tuple[np.ndarray, int]],
    confidence: float,
    *,
    satterthwaite: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t intervals of estimates whose variance is a sum of independent estimated
    parts, each ``(variance, degrees of freedom)``: with the Welch-Satterthwaite degrees of
    freedom (a part that is nearly all of the variance lends its own), or the fewest of any
    part (``satterthwaite=False``: conservative where a part's own spread is uncertain and
    far from normal).

    NaN where no part has a degree of freedom; the estimate itself where the variance is 0.
    """
    from scipy import stats

    mean = np.asarray(mean, dtype=float)
    low, high = np.full(mean.shape, math.nan), np.full(mean.shape, math.nan)
    usable = [(np.asarray(v, dtype=float), df) for v, df in parts if df > 0]
    if not usable:
        return low, high
    var = np.sum([v for v, _ in usable], axis=0)
    spread = np.sum([v**2 / df for v, df in usable], axis=0)
    for k in range(mean.size):
        if var[k] <= 0.0:
            low[k] = high[k] = mean[k]
            continue
        df = var[k] ** 2 / spread[k] if satterthwaite else min(d for _, d in usable)
        half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(var[k])
        low[k], high[k] = mean[k] - half, mean[k] + half
    return low, high
