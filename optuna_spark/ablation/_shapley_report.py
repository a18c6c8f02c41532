"""``shapley_report`` and ``plot_shapley``: Shapley values of a ``ShapleyAblation`` study."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._report_stats import combined_t_interval
from optuna_spark.ablation._report_trials import collect
from optuna_spark.ablation._report_trials import minimize_of
from optuna_spark.ablation._shapley import ATTR_DESIGN
from optuna_spark.ablation._shapley import left_out_of
from optuna_spark.ablation._shapley_fit import Game
from optuna_spark.ablation._shapley_fit import SecondOrderFit
from optuna_spark.ablation._shapley_fit import fit_game

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go


def shapley_report(
    study: optuna.Study,
    *,
    confidence: float = 0.95,
    target: Callable[[FrozenTrial], float] | None = None,
    direction: str | StudyDirection | None = None,
) -> pd.DataFrame:
    """Each component's Shapley value in a :class:`ShapleyAblation` study, with its interval.

    The game is the objective with only some components present, signed so that a positive
    value means the component improves the objective in the study's direction. Repeats are
    paired by seed: every subset runs with the same seeds.

    Args:
        study: A study run by ``AblationSampler(ShapleyAblation(...))`` (finished, or far
            enough that every subset of the design has a completed trial for some seed).
        confidence: The intervals' confidence level.
        target: A trial's value to use instead of its objective value.
        direction: The direction of ``target`` (default: the study's).

    Returns:
        A DataFrame indexed by component, with ``shapley`` (in objective units),
        ``ci_low`` and ``ci_high``, best first. Its ``attrs`` hold ``"interactions"`` (with
        ``order=2``: a DataFrame indexed by component pairs, with ``interaction``,
        ``ci_low``, ``ci_high`` and ``excludes_zero``, whether the interval at the level
        corrected for the number of pairs (Bonferroni) excludes 0; negative: redundant,
        positive: synergy; its ``attrs["estimator"]`` says whether they are exact or a
        second-order fit's), ``"total"`` (all components against none), and
        ``"efficiency"`` (a sentence: the values add up to that total). On a budget, the
        intervals add to the seeds' spread the permutations' (``order=1``, with the fewer
        degrees of freedom of the two) or the second-order fit's residuals (``order=2``,
        with Welch-Satterthwaite degrees of freedom). With one repeat, the exact design's
        intervals cannot be computed (NaN), and a budget's rest on the permutations' spread
        (NaN with one pair of them) or the fit's residuals alone.

    Raises:
        ValueError: The study has no Shapley ablation, no seed has every subset done, or
            (``order=2`` on a budget) the subsets done do not identify every pair yet.
    """
    pd = import_ablation_dependency("pandas")
    design = _design(study)
    names: list[str] = design["components"]
    sign = -1.0 if minimize_of(study, target, direction) else 1.0
    game = _game(study, names, target, sign)
    repeats = len(next(iter(game.values())))
    pairwise = design.get("order", 2) == 2
    fit = fit_game(game, names) if pairwise and not design["exact"] else None
    per_repeat, low, high = _values(game, names, design, fit, confidence)
    values = per_repeat.mean(axis=0)
    frame = pd.DataFrame(
        {"shapley": values, "ci_low": low, "ci_high": high},
        index=pd.Index(names, name="component"),
    ).sort_values("shapley", ascending=False)
    total = float(np.mean(game[frozenset(names)] - game[frozenset()]))
    frame.attrs["total"] = total
    frame.attrs["efficiency"] = (
        f"The values add up to {float(values.sum()):.6g}: the difference between all "
        f"components and none ({total:.6g}), averaged over {repeats} repeat(s)."
    )
    if pairwise:
        frame.attrs["interactions"] = _interactions_frame(pd, game, names, fit, confidence)
    return frame


def _values(
    game: Game,
    names: Sequence[str],
    design: dict[str, Any],
    fit: SecondOrderFit | None,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values per repeat (repeats, n), and their intervals: exact over every subset;
    the second-order fit's, with ``fit`` (pairs on a budget); else the permutations' of the
    units whose subsets have all run (an adaptive budget may stop early)."""
    if design["exact"]:
        per_repeat = _exact_values(game, names)
        return per_repeat, *_intervals(per_repeat, None, confidence)
    if fit is not None:
        per_repeat, variance = fit.values()
        return per_repeat, *_with_misfit(per_repeat, variance, fit.residual_df, confidence)
    units = _unit_marginals(game, _complete(game, design["permutations"]), names)
    per_repeat = units.mean(axis=0)
    return per_repeat, *_intervals(per_repeat, units.mean(axis=1), confidence)


def _design(study: optuna.Study) -> dict[str, Any]:
    for trial in study.get_trials(deepcopy=False):
        design = trial.user_attrs.get(ATTR_DESIGN)
        if isinstance(design, dict):
            return design
    raise ValueError(
        f"Study {study.study_name!r} is not a Shapley ablation: run it with "
        "AblationSampler(ShapleyAblation(...))."
    )


def _game(
    study: optuna.Study,
    names: Sequence[str],
    target: Callable[[FrozenTrial], float] | None,
    sign: float,
) -> Game:
    """``v(S)`` for each subset of present components, one value per seed that every subset
    has (the mean of its completed trials of that seed)."""
    found = collect(study, target)
    by_subset: dict[frozenset[str], dict[Any, float]] = {}
    for label in found.labels:
        present = frozenset(names) - set(found.left_out.get(label, ()))
        by_seed = found.values.get(label, {})
        by_subset[present] = {k: sign * float(np.mean(v)) for k, v in by_seed.items()}
    common = set.intersection(*(set(v) for v in by_subset.values())) if by_subset else set()
    if not common:
        raise ValueError(
            f"Study {study.study_name!r}: no seed has a completed trial of every subset yet; "
            "the report needs each subset of the design done for at least one seed."
        )
    order = sorted(common, key=repr)
    return {s: np.array([v[k] for k in order]) for s, v in by_subset.items()}


def _exact_values(game: Game, names: Sequence[str]) -> np.ndarray:
    """The exact Shapley values, per repeat: shape (repeats, n)."""
    n = len(names)
    out = []
    for i in names:
        others = [c for c in names if c != i]
        total = np.zeros(len(next(iter(game.values()))))
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                total = total + weight * (game[s | {i}] - game[s])
        out.append(total)
    return np.stack(out, axis=1)


def _interactions(game: Game, names: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
    """The exact pairwise Shapley interaction indices, per repeat."""
    n = len(names)
    out = {}
    for i, j in itertools.combinations(names, 2):
        others = [c for c in names if c not in (i, j)]
        total = np.zeros(len(next(iter(game.values()))))
        for size in range(n - 1):
            weight = math.factorial(size) * math.factorial(n - size - 2) / math.factorial(n - 1)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                both, one, other = game[s | {i, j}], game[s | {i}], game[s | {j}]
                total = total + weight * (both - one - other + game[s])
        out[(i, j)] = total
    return out


def _interactions_frame(
    pd: Any, game: Game, names: Sequence[str], fit: SecondOrderFit | None, confidence: float
) -> pd.DataFrame:
    """The pairs' interaction indices: exact over every subset, else the second-order
    ``fit``'s (whose residuals add to the intervals)."""
    pairs = list(itertools.combinations(names, 2))
    if fit is None:
        exact = _interactions(game, names)
        per_repeat = np.stack([exact[pair] for pair in pairs], axis=1)
        variance, df = np.zeros(len(pairs)), 0
        estimator = f"exact, over all {len(game)} subsets"
    else:
        (per_repeat, variance), df = fit.interactions(), fit.residual_df
        estimator = (
            f"a second-order fit to {fit.n_subsets} of the {2 ** len(names)} subsets: exact "
            "for a game without interactions of order three or more, whose intervals widen "
            "with what it cannot fit"
        )
    scale = max(1.0, max(float(np.abs(v).max()) for v in game.values()))
    per_repeat = np.where(np.abs(per_repeat) <= 1e-9 * scale, 0.0, per_repeat)  # rounding
    mean = per_repeat.mean(axis=0)
    low, high = _with_misfit(per_repeat, variance, df, confidence)
    # Whether an interval excludes 0 is decided at the level corrected for the number of
    # pairs (Bonferroni), so that null pairs are rarely flagged however many there are.
    corrected = 1 - (1 - confidence) / max(1, len(pairs))
    strict_low, strict_high = _with_misfit(per_repeat, variance, df, corrected)
    frame = pd.DataFrame(
        {
            "interaction": mean,
            "ci_low": low,
            "ci_high": high,
            "excludes_zero": (strict_low > 0) | (strict_high < 0),
        },
        index=pd.MultiIndex.from_tuples(pairs, names=["a", "b"]),
    )
    frame.attrs["estimator"] = estimator
    return frame


def _unit_marginals(
    game: Game, permutations: Sequence[Sequence[str]], names: Sequence[str]
) -> np.ndarray:
    """Each antithetic pair's mean marginal contributions, per repeat: shape (units,
    repeats, n), components in the order of ``names``."""
    index = {c: k for k, c in enumerate(names)}
    repeats = len(next(iter(game.values())))
    units = []
    for u in range(0, len(permutations), 2):
        pair = permutations[u : u + 2]
        marginal = np.zeros((repeats, len(names)))
        for order in pair:
            for k, c in enumerate(order):
                before = frozenset(order[:k])
                marginal[:, index[c]] += (game[before | {c}] - game[before]) / len(pair)
        units.append(marginal)
    return np.stack(units)


def _complete(game: Game, permutations: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """The units (pairs of permutations), in order, up to the first whose subsets have not
    all run."""
    out: list[Sequence[str]] = []
    for u in range(0, len(permutations), 2):
        pair = permutations[u : u + 2]
        if not all(frozenset(p[:k]) in game for p in pair for k in range(len(p) + 1)):
            break
        out += pair
    if not out:
        raise ValueError("No pair of permutations of the design has all its subsets done yet.")
    return out


def half_widths(
    history: AblationHistory,
    names: Sequence[str],
    permutations: Sequence[Sequence[str]],
    fixed: Sequence[frozenset[str]],
) -> tuple[list[float], float]:
    """For an adaptive design: each value's 95% interval's half-width from the results so
    far of the ``fixed`` subsets (with pairs: the values are then the fit's) and of the
    first units (infinite where it cannot be computed yet), and all against none."""
    sign = -1.0 if history.minimize else 1.0
    by_subset: dict[frozenset[str], dict[int, float]] = {}
    for label, values in history.values.items():
        present = frozenset(names) - set(left_out_of(label))
        by_subset[present] = {k: sign * v for k, v in values.items()}
    needed = {frozenset(p[:k]) for p in permutations for k in range(len(p) + 1)} | set(fixed)
    if not needed <= set(by_subset):
        return [math.inf] * len(names), 0.0
    common = sorted(set.intersection(*(set(by_subset[s]) for s in needed)))
    if not common:
        return [math.inf] * len(names), 0.0
    game = {s: np.array([by_subset[s][k] for k in common]) for s in needed}
    fit = fit_game(game, names) if fixed else None
    design = {"exact": False, "permutations": permutations}
    _, low, high = _values(game, names, design, fit, 0.95)
    total = float(np.mean(game[frozenset(names)] - game[frozenset()]))
    spans = (high - low) / 2
    widths = [float(w) if math.isfinite(w) else math.inf for w in spans]
    return widths, total


def _intervals(
    per_repeat: np.ndarray, per_unit: np.ndarray | None, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t intervals of the mean of ``per_repeat`` (repeats, n), from the seeds'
    spread; with ``per_unit`` (units, n), the permutations' spread is added to it (a
    conservative sum: both hold some of the seeds' noise), with the fewer degrees of
    freedom of the two (a few units' spread is itself uncertain, and their marginal
    contributions can be far from normal). NaN where neither has two."""
    parts = _parts(per_repeat) + ([] if per_unit is None else _parts(per_unit))
    return combined_t_interval(per_repeat.mean(axis=0), parts, confidence, satterthwaite=False)


def _with_misfit(
    per_repeat: np.ndarray, variance: np.ndarray, df: int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t intervals of the mean of ``per_repeat`` (repeats, k), from the seeds'
    spread plus a fit's misfit ``variance`` with ``df`` degrees of freedom (none: ``0``),
    with the Welch-Satterthwaite degrees of freedom: the residuals have many, the repeats
    few."""
    parts = [*_parts(per_repeat), (variance, df)]
    return combined_t_interval(per_repeat.mean(axis=0), parts, confidence)


def _parts(samples: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """The variance of the mean of ``samples`` (k, n) and its degrees of freedom (none
    with one sample)."""
    k = samples.shape[0]
    return [(samples.var(axis=0, ddof=1) / k, k - 1)] if k > 1 else []


def plot_shapley(study: optuna.Study, **kwargs: Any) -> go.Figure:
    """The Shapley values as horizontal bars with their intervals, largest on top, in the
    style of ``optuna.visualization`` (``kwargs`` go to :func:`shapley_report`)."""
    go = import_ablation_dependency("plotly.graph_objects")
    report = shapley_report(study, **kwargs).iloc[::-1]
    error = {
        "type": "data",
        "symmetric": False,
        "array": (report["ci_high"] - report["shapley"]).fillna(0).tolist(),
        "arrayminus": (report["shapley"] - report["ci_low"]).fillna(0).tolist(),
    }
    figure = go.Figure(
        go.Bar(
            x=report["shapley"],
            y=[str(c) for c in report.index],
            orientation="h",
            error_x=error,
            marker_color="rgb(66, 146, 198)",
        )
    )
    figure.update_layout(
        title="Shapley values (what each component brings)",
        xaxis_title=f"Shapley value ({report.attrs['efficiency']})"[:120],
        yaxis_title="component",
    )
    return figure
