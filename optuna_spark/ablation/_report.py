"""The ablation report: each arm's mean and confidence interval, and its test against the base."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._imports import import_ablation_dependency

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
)


def ablation_report(
    study: optuna.Study,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    direction: str | StudyDirection | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per arm of a :class:`LOCOSampler` study: its spread, and its test against the base.

    Each arm's completed trials give ``n``, ``mean``, ``std`` (sample standard deviation) and a
    Student-t confidence interval of the mean (``ci_low``, ``ci_high``). ``diff`` is the arm's
    mean minus the base's, with its confidence interval and a two-sided t-test:

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
    so a positive importance means the component helps. Rows: the base first, then the arms
    from the most to the least important (arms without a difference last).

    Args:
        study: A study run with :class:`LOCOSampler`. Only COMPLETE trials count.
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
        ``n_pairs``, ``p_value``, ``p_holm`` and ``significant``; its ``attrs`` hold
        ``direction``, ``confidence`` and ``alpha``.

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

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), but got {confidence=}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha=}.")
    minimize = _minimize(study, target, direction)
    labels, values = _collect(study, target)

    base = values.get(a.BASE, {})
    rows: list[dict[str, Any]] = []
    for label in labels:
        kind, name = a.parse_label(label)
        by_key = values.get(label, {})
        row: dict[str, Any] = {"arm": label, "kind": kind, "name": name}
        row.update(_describe([v for vs in by_key.values() for v in vs], confidence))
        if label == a.BASE:
            row.update(diff=0.0, diff_ci_low=math.nan, diff_ci_high=math.nan, importance=0.0)
            row.update(test="", n_pairs=0, p_value=math.nan)
        else:
            row.update(_compare(by_key, base, confidence))
            row["importance"] = row["diff"] if minimize else -row["diff"]
        rows.append(row)

    arms = [r for r in rows if r["arm"] != a.BASE]
    p_values = np.array([r["p_value"] for r in arms], dtype=float)
    tested = np.isfinite(p_values)
    adjusted = np.full(len(arms), math.nan)
    adjusted[tested] = holm(p_values[tested])
    for r, p in zip(arms, adjusted, strict=True):
        r["p_holm"] = float(p)
        r["significant"] = bool(np.isfinite(p) and p < alpha)
    for r in rows:
        if r["arm"] == a.BASE:
            r.update(p_holm=math.nan, significant=False)
    arms.sort(key=lambda r: -r["importance"] if np.isfinite(r["importance"]) else math.inf)
    ordered = [r for r in rows if r["arm"] == a.BASE] + arms

    report = pd.DataFrame(ordered, columns=list(COLUMNS))
    report = report.astype({"n": int, "n_pairs": int, "significant": bool})
    report.attrs.update(
        direction="minimize" if minimize else "maximize", confidence=confidence, alpha=alpha
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

                from optuna_spark.ablation._imports import import_ablation_dependency
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


def _minimize(
    study: optuna.Study,
    target: Callable[[FrozenTrial], float] | None,
    direction: str | StudyDirection | None,
) -> bool:
    if direction is None:
        if len(study.directions) > 1:
            raise ValueError(
                "A multi-objective study needs target= (a trial's value to report) and "
                "direction= ('minimize' or 'maximize')."
            )
        return study.direction == StudyDirection.MINIMIZE
    if len(study.directions) > 1 and target is None:
        raise ValueError("A multi-objective study needs target= (a trial's value to report).")
    if isinstance(direction, StudyDirection):
        return direction == StudyDirection.MINIMIZE
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', but got {direction=}.")
    return direction == "minimize"


def _collect(
    study: optuna.Study, target: Callable[[FrozenTrial], float] | None
) -> tuple[list[str], dict[str, dict[Any, list[float]]]]:
    """Every arm's label, and each arm's completed values grouped by seed (or repeat)."""
    labels: list[str] = []
    values: dict[str, dict[Any, list[float]]] = {}
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        label = attrs.get(a.ATTR_ARM)
        if label is None:
            continue
        for known in [*attrs.get(a.ATTR_ARMS, ()), label]:
            if known not in labels:
                labels.append(known)
        if trial.state != TrialState.COMPLETE:
            continue
        value = target(trial) if target is not None else trial.value
        if value is None or not math.isfinite(value):
            continue
        key = attrs.get(a.ATTR_SEED, ("repeat", attrs.get(a.ATTR_REPEAT)))
        values.setdefault(label, {}).setdefault(key, []).append(float(value))
    if not labels:
        raise ValueError(
            f"Study {study.study_name!r} has no trials of a LOCOSampler (no 'loco_arm' user "
            "attribute)."
        )
    if a.BASE in labels:
        labels.remove(a.BASE)
        labels.insert(0, a.BASE)
    return labels, values


def _describe(values: Sequence[float], confidence: float) -> dict[str, Any]:
    n = len(values)
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    low, high = _t_interval(mean, std, n, confidence)
    return {"n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def _t_interval(mean: float, std: float, n: int, confidence: float) -> tuple[float, float]:
    if n < 2 or not math.isfinite(std):
        return math.nan, math.nan
    if std == 0.0:
        return mean, mean
    from scipy import stats

    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return float(low), float(high)


def _compare(
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
