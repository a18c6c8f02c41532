"""The ablation report: each arm's mean and confidence interval, and its test against the base."""

from __future__ import annotations

import contextlib
import dataclasses
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

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._interactions import add_interactions
from optuna_spark.ablation._sequential import Decision
from optuna_spark.ablation._sequential import look_points

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


def ablation_report(
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

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), but got {confidence=}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha=}.")
    minimize = _minimize(study, target, direction)
    found = _collect(study, target)
    reference, values = found.reference, found.values
    # Adaptive repeats looked at each arm up to ``looks`` times: widen the intervals and
    # multiply the p-values by that (the union bound the stopping rule used).
    looks = found.looks
    diff_confidence = 1.0 - (1.0 - confidence) / looks
    sign = 1.0 if minimize else -1.0
    if found.mode == "in":
        sign = -sign  # arms add components to the reference: importance is how much they help

    ref_values = values.get(reference, {})
    decisions = _decisions(study)
    rows: list[dict[str, Any]] = []
    for label in found.labels:
        by_key = values.get(label, {})
        kind, name = found.kinds.get(label, (a.KIND_CUSTOM, label))
        row: dict[str, Any] = {"arm": label, "kind": kind, "name": name}
        row.update(_describe([v for vs in by_key.values() for v in vs], confidence))
        if label == reference:
            row.update(diff=0.0, diff_ci_low=math.nan, diff_ci_high=math.nan, importance=0.0)
            row.update(test="", n_pairs=0, p_value=math.nan)
        else:
            row.update(_compare(by_key, ref_values, diff_confidence))
            if math.isfinite(row["p_value"]):
                row["p_value"] = min(1.0, row["p_value"] * looks)
            row["importance"] = sign * row["diff"]
        decision = decisions.get(label)
        row["stopped"] = decision.reason if decision else ""
        row["stopped_at"] = decision.n if decision else 0
        rows.append(row)

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
    add_interactions(rows, values, found.left_out, reference, diff_confidence, sign)
    arms.sort(key=lambda r: -r["importance"] if np.isfinite(r["importance"]) else math.inf)
    ordered = [r for r in rows if r["arm"] == reference] + arms

    report = pd.DataFrame(ordered, columns=list(COLUMNS))
    report = report.astype(
        {"n": int, "n_pairs": int, "significant": bool, "stopped_at": int, "finding": str}
    )
    report.attrs.update(
        direction="minimize" if minimize else "maximize",
        confidence=confidence,
        alpha=alpha,
        reference=reference,
        mode=found.mode,
        looks=looks,
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


@dataclasses.dataclass
class _Found:
    """What an ablation study's trials hold, for the report."""

    labels: list[str]
    values: dict[str, dict[Any, list[float]]]  # completed values by arm, then by seed
    kinds: dict[str, tuple[str, str]]  # (kind, name) by arm
    left_out: dict[str, tuple[str, ...]]  # the components each arm leaves out
    reference: str
    mode: str
    looks: int  # how often an arm may have been looked at (adaptive repeats), else 1


def _collect(study: optuna.Study, target: Callable[[FrozenTrial], float] | None) -> _Found:
    """Every arm's label, and each arm's completed values grouped by seed (or repeat)."""
    found = _Found([], {}, {}, {}, a.BASE, "out", 1)
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        label = attrs.get(a.ATTR_ARM)
        if label is None:
            continue
        for known in [*attrs.get(a.ATTR_ARMS, ()), label]:
            if known not in found.labels:
                found.labels.append(known)
        found.kinds[label] = (str(attrs.get(a.ATTR_KIND)), str(attrs.get(a.ATTR_NAME)))
        found.left_out[label] = a.arm_from_attrs(attrs).left_out
        found.reference = str(attrs.get(a.ATTR_REFERENCE) or a.BASE)
        found.mode = str(attrs.get(a.ATTR_MODE, "out"))
        adaptive = attrs.get(a.ATTR_ADAPTIVE)
        if adaptive:
            looks = len(look_points(int(adaptive[0]), int(adaptive[1])))
            found.looks = max(found.looks, looks)
        if trial.state != TrialState.COMPLETE:
            continue
        value = target(trial) if target is not None else trial.value
        if value is None or not math.isfinite(value):
            continue
        key = attrs.get(a.ATTR_SEED, ("repeat", attrs.get(a.ATTR_REPEAT)))
        found.values.setdefault(label, {}).setdefault(key, []).append(float(value))
    if not found.labels:
        raise ValueError(
            f"Study {study.study_name!r} has no trials of an ablation sampler (no 'loco_arm' "
            "user attribute)."
        )
    for label in found.labels:
        if label not in found.kinds:  # an arm of the list that has not run yet
            with contextlib.suppress(ValueError):
                found.kinds[label] = a.parse_label(label)
    if found.reference in found.labels:
        found.labels.remove(found.reference)
        found.labels.insert(0, found.reference)
    return found


def _decisions(study: optuna.Study) -> dict[str, Decision]:
    """Why each arm of an adaptive study stopped getting repeats, as the sampler recorded."""
    return {
        key[len(a.SYS_DECISION) :]: Decision.from_attr(value)
        for key, value in optuna_adapter.storage_of(study)
        .get_study_system_attrs(optuna_adapter.study_id_of(study))
        .items()
        if key.startswith(a.SYS_DECISION)
    }


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
