"""The ablation report: each arm's mean and confidence interval, and its test against the base."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._interactions import add_interactions
from optuna_spark.ablation._report_stats import compare
from optuna_spark.ablation._report_stats import describe
from optuna_spark.ablation._report_trials import Found
from optuna_spark.ablation._report_trials import collect
from optuna_spark.ablation._report_trials import decisions
from optuna_spark.ablation._report_trials import minimize_of
from optuna_spark.ablation._sequential import Decision

if TYPE_CHECKING:
    import pandas as pd

#: The report's columns, in order.
COLUMNS = (
    "arm",
    "kind",
    "name",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "importance",
    "test",
    "n_pairs",
    "p_value",
    "p_holm",
    "significant",
    "stopped",
    "stopped_at",
    "sum_of_singles",
    "interaction",
    "interaction_ci_low",
    "interaction_ci_high",
    "finding",
)


def ablation_report(  # long: the public docstring, with an example
    study: optuna.Study,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    direction: str | StudyDirection | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per arm of an ablation study: its spread, and its test against the reference.

    The reference is the base (nothing left out), or ``"none"`` in a leave-one-in study.
    Each arm's completed trials give ``n``, ``mean``, ``std`` (sample standard deviation) and a
    Student-t confidence interval of the mean (``ci_low``, ``ci_high``). ``diff`` is the arm's
    mean minus the reference's, with its confidence interval and a two-sided t-test:

    - *paired* (``test == "paired"``) when at least two repeats of the arm and of the base ran
      with the same seed: the test of the seed-by-seed differences (``scipy.stats.ttest_rel``),
      which removes the variance that seeds share across arms;
    - otherwise *Welch*'s unequal-variances test (``scipy.stats.ttest_ind(equal_var=False)``)
      when both have at least two values; otherwise no test (``p_value`` is NaN).

    When every difference is the same up to rounding (deterministic training), the p-value is
    0 for a non-zero difference and 1 for none. ``p_holm`` corrects the p-values for the number
    of arms tested (Holm's step-down method, which controls the family-wise error rate);
    ``significant`` is ``p_holm < alpha``. ``importance`` is how much worse the objective gets
    without the component (``diff`` for a minimized objective, ``-diff`` for a maximized one),
    so a positive importance means the component helps; in a leave-one-in study, how much
    better it gets with the component. Rows: the reference first, then the arms from the most
    to the least important (arms without a difference last).

    With adaptive repeats (``n_repeats=(low, high)``), each arm was looked at up to ``K``
    times (``attrs["looks"]``): p-values are multiplied by ``K`` and the difference's interval
    is at level ``1 - (1 - confidence) / K`` (the union bound that keeps the early stops
    honest); ``stopped`` says why an arm got no more repeats (``"significant"``,
    ``"negligible"``, ``"futile"``, ``"max repeats"``) and ``stopped_at`` after how many
    pairs.

    An arm that leaves two components out (``pairs``) also gets ``sum_of_singles`` (the sum of
    the two single arms' ``diff``), ``interaction`` (the pair's difference minus the singles',
    seed by seed: ``pair - a - b + reference``) with its interval (simultaneous over the
    pairs: Bonferroni), and ``finding``: ``"redundant: keep one"`` when removing both is
    significantly harmful and costs more than the two removals added together (the
    interaction's interval is on the harmful side of 0) while neither removal alone is
    significant, or the two add up to less than half the pair's effect: each covers for the
    other. ``"interaction"`` when otherwise the interaction's interval excludes 0.

    Args:
        study: A study run with :class:`LOCOSampler` (or any :class:`AblationSampler`). Only
            COMPLETE trials count.
        target: The value of a trial to report (defaults to its objective value); required for
            a multi-objective study, as in ``optuna.visualization``.
        direction: ``"minimize"`` or ``"maximize"``: whether a larger value is worse or better.
            Defaults to the study's direction (required with a multi-objective study).
        confidence: Level of the confidence intervals.
        alpha: Family-wise significance level of the Holm-corrected tests.

    Returns:
        A ``pandas.DataFrame`` with the columns ``arm`` (label), ``kind``, ``name``, ``n``,
        ``mean``, ``std``, ``ci_low``, ``ci_high``, ``diff``, ``diff_ci_low``,
        ``diff_ci_high``, ``importance``, ``test`` (``"paired"``, ``"welch"`` or ``""``),
        ``n_pairs``, ``p_value``, ``p_holm``, ``significant``, ``stopped``, ``stopped_at``,
        ``sum_of_singles``, ``interaction``, ``interaction_ci_low``, ``interaction_ci_high``
        and ``finding``; its ``attrs`` hold ``direction``, ``confidence``, ``alpha``,
        ``reference``, ``mode`` and ``looks``.

    Example:

        .. testcode::

            import optuna
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import ablation_report
            from optuna_spark.ablation import get_arm


            def objective(trial):
                arm = get_arm(trial)
                accuracy = 0.8 + 0.02 * arm.repeat  # what the seed does, in every arm
                return accuracy + (0.1 if arm.is_enabled("trick") else 0.0)


            sampler = LOCOSampler(components=["trick", "fad"], n_repeats=3, seed=0)
            study = optuna.create_study(sampler=sampler, direction="maximize")
            study.optimize(objective)
            report = ablation_report(study).set_index("arm")
            assert report.loc["component:trick", "significant"]
            assert not report.loc["component:fad", "significant"]
            assert abs(report.loc["component:trick", "importance"] - 0.1) < 1e-9
    """
    pd = import_ablation_dependency("pandas")
    import_ablation_dependency("scipy.stats")  # for the statistical tests: fail before any work
    _check_levels(confidence, alpha)
    minimize = minimize_of(study, target, direction)
    found = collect(study, target)
    # Adaptive repeats looked at each arm up to ``looks`` times: widen the intervals and
    # multiply the p-values by that (the union bound the stopping rule used).
    diff_confidence = 1.0 - (1.0 - confidence) / found.looks
    sign = 1.0 if minimize else -1.0
    if found.mode == "in":
        sign = -sign  # arms add components to the reference: importance is how much they help
    stopped = decisions(study)
    rows = [
        _row(found, label, stopped, confidence, diff_confidence, sign) for label in found.labels
    ]
    _add_holm(rows, found.reference, alpha)
    add_interactions(rows, found.values, found.left_out, found.reference, diff_confidence, sign)
    report = pd.DataFrame(_ordered(rows, found.reference), columns=list(COLUMNS))
    report = report.astype(
        {"n": int, "n_pairs": int, "significant": bool, "stopped_at": int, "finding": str}
    )
    report.attrs.update(
        direction="minimize" if minimize else "maximize",
        confidence=confidence,
        alpha=alpha,
        reference=found.reference,
        mode=found.mode,
        looks=found.looks,
    )
    return report


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error rate).

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i + 1`` (``i`` from 1), and
    adjusted p-values are made non-decreasing in that order and capped at 1. Rejecting where
    the adjusted p-value is below ``alpha`` controls the probability of any false rejection at
    ``alpha``.

    Example:

        .. testcode::

            from optuna_spark.ablation._report import holm

            assert list(holm([0.01, 0.04, 0.03])) == [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        adjusted[i] = running
    return adjusted


def _check_levels(confidence: float, alpha: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), but got {confidence=}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha=}.")


def _row(
    found: Found,
    label: str,
    stopped: Mapping[str, Decision],
    confidence: float,
    diff_confidence: float,
    sign: float,
) -> dict[str, Any]:
    """An arm's row: its spread, its difference from the reference, why it stopped."""
    by_key = found.values.get(label, {})
    kind, name = found.kinds.get(label, (a.KIND_CUSTOM, label))
    row: dict[str, Any] = {"arm": label, "kind": kind, "name": name}
    row.update(describe([v for vs in by_key.values() for v in vs], confidence))
    if label == found.reference:
        row.update(diff=0.0, diff_ci_low=math.nan, diff_ci_high=math.nan, importance=0.0)
        row.update(test="", n_pairs=0, p_value=math.nan)
    else:
        row.update(compare(by_key, found.values.get(found.reference, {}), diff_confidence))
        if math.isfinite(row["p_value"]):
            row["p_value"] = min(1.0, row["p_value"] * found.looks)
        row["importance"] = sign * row["diff"]
    decision = stopped.get(label)
    row["stopped"] = decision.reason if decision else ""
    row["stopped_at"] = decision.n if decision else 0
    return row


def _add_holm(rows: Sequence[dict[str, Any]], reference: str, alpha: float) -> None:
    """Set ``p_holm`` and ``significant`` on every row (the reference is not tested)."""
    arms = [r for r in rows if r["arm"] != reference]
    p_values = np.array([r["p_value"] for r in arms], dtype=float)
    tested = np.isfinite(p_values)
    adjusted = np.full(len(arms), math.nan)
    adjusted[tested] = holm(p_values[tested])
    for r, p in zip(arms, adjusted, strict=True):
        r["p_holm"] = float(p)
        r["significant"] = bool(np.isfinite(p) and p < alpha)
    for r in rows:
        if r["arm"] == reference:
            r.update(p_holm=math.nan, significant=False)


def _ordered(rows: Sequence[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """The reference first, then the arms from the most to the least important."""
    arms = [r for r in rows if r["arm"] != reference]
    arms.sort(key=lambda r: -r["importance"] if np.isfinite(r["importance"]) else math.inf)
    return [r for r in rows if r["arm"] == reference] + arms
