"""The ablation path's report and plot: each step's parameter change and what it contributed."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._path import TARGET
from optuna_spark.ablation._path import AblationPath
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._report_stats import compare
from optuna_spark.ablation._report_stats import describe

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

#: The path report's columns, in order.
PATH_COLUMNS = (
    "step",
    "param",
    "from_value",
    "to_value",
    "arm",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "gain",
    "gain_ci_low",
    "gain_ci_high",
    "share",
    "n_candidates",
)


def ablation_path_report(study: optuna.Study, *, confidence: float = 0.95) -> pd.DataFrame:
    """The ablation path of a study run with :class:`AblationPath`: one row per step.

    Step 0 is the source configuration (``"base"``); step ``k`` flips the parameter chosen at
    round ``k`` (``param``, from ``from_value`` to ``to_value``). ``mean`` and its interval are
    the step's configuration's; ``gain`` is how much better it is than the step before (lower
    for a minimized objective, higher for a maximized one), paired by seed when the trials
    were (with its t-interval), and ``share`` is the gain as a part of the whole path's gain
    (source to target). ``n_candidates`` is how many flips that round compared. A path still
    running (or cut short) shows the steps decided so far.

    Args:
        study: A study run with ``AblationSampler(AblationPath(...))``.
        confidence: Level of the intervals.

    Returns:
        A ``pandas.DataFrame`` with the columns ``step``, ``param``, ``from_value``,
        ``to_value``, ``arm``, ``n``, ``mean``, ``ci_low``, ``ci_high``, ``gain``,
        ``gain_ci_low``, ``gain_ci_high``, ``share`` and ``n_candidates``.

    Raises:
        ValueError: The study is not an ablation path study.
    """
    pd = import_ablation_dependency("pandas")
    import_ablation_dependency("scipy.stats")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), but got {confidence=}.")
    minimize = study.directions[0] == StudyDirection.MINIMIZE
    policy, history, by_seed = _rebuild(study, minimize)
    rounds, _ = policy.walk(history)
    states = list(rounds)
    if len(states) == len(policy.params) and TARGET in by_seed:
        states.append(policy.params)  # the last flip is the target itself
    total = history.mean(TARGET) - history.mean(a.BASE)
    sign = -1.0 if minimize else 1.0  # gain: lower is better when minimizing
    rows: list[dict[str, Any]] = []
    for step, state in enumerate(states):
        label = policy.label(state)
        values = by_seed.get(label, {})
        row: dict[str, Any] = {"step": step, "arm": label}
        row.update(describe([v for vs in values.values() for v in vs], confidence))
        if step == 0:
            row.update(param="", from_value=None, to_value=None, gain=0.0)
            row.update(gain_ci_low=math.nan, gain_ci_high=math.nan, share=0.0, n_candidates=0)
        else:
            before = by_seed.get(policy.label(states[step - 1]), {})
            gain = _gain(values, before, sign, total, confidence)
            param = next(p for p in state if p not in states[step - 1])
            row.update(gain, param=param, n_candidates=len(policy.params) - step + 1)
            row.update(from_value=policy.source.get(param), to_value=policy.target.get(param))
        rows.append(row)
    report = pd.DataFrame(rows, columns=list(PATH_COLUMNS))
    report.attrs.update(direction="minimize" if minimize else "maximize", confidence=confidence)
    return report


def _gain(
    values: dict[Any, list[float]],
    before: dict[Any, list[float]],
    sign: float,
    total: float,
    confidence: float,
) -> dict[str, float]:
    """A step's gain over the step before, with its interval, and its share of ``total``."""
    diff = compare(values, before, confidence)
    low, high = sign * diff["diff_ci_low"], sign * diff["diff_ci_high"]
    return {
        "gain": sign * diff["diff"],
        "gain_ci_low": min(low, high),
        "gain_ci_high": max(low, high),
        "share": sign * diff["diff"] / (sign * total) if total else math.nan,
    }


def plot_ablation_path(
    study: optuna.Study, *, target_name: str = "Objective Value", confidence: float = 0.95
) -> go.Figure:
    """Plot the ablation path: each step's mean with its interval, labelled by the change.

    Args:
        study: A study run with ``AblationSampler(AblationPath(...))``.
        target_name: The value's name on the axis.
        confidence: Level of the error bars.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    go = import_ablation_dependency("plotly.graph_objects")
    report = ablation_path_report(study, confidence=confidence)
    names = [
        "source" if r.step == 0 else f"{r.step}. {r.param}: {r.from_value!r} → {r.to_value!r}"
        for r in report.itertuples(index=False)
    ]
    error = {
        "type": "data",
        "symmetric": False,
        "array": list(report["ci_high"] - report["mean"]),
        "arrayminus": list(report["mean"] - report["ci_low"]),
    }
    fig = go.Figure(
        go.Scatter(
            x=names,
            y=list(report["mean"]),
            mode="lines+markers",
            error_y=error,
            hovertext=[
                f"gain {g:.4g} ({s:.0%} of the path)"
                for g, s in zip(report["gain"], report["share"], strict=True)
            ],
        )
    )
    fig.update_layout(title="Ablation Path", xaxis_title="Step", yaxis_title=target_name)
    return fig


def _rebuild(
    study: optuna.Study, minimize: bool
) -> tuple[AblationPath, AblationHistory, dict[str, dict[Any, list[float]]]]:
    """The path policy, its history and each arm's values by seed, from the study."""
    storage = optuna_adapter.storage_of(study)
    attrs = storage.get_study_system_attrs(optuna_adapter.study_id_of(study))
    memory = {k[len(a.SYS_MEMORY) :]: v for k, v in attrs.items() if k.startswith(a.SYS_MEMORY)}
    if "path" not in memory:
        raise ValueError(
            f"Study {study.study_name!r} is not an ablation path study: it has no trials of "
            "AblationSampler(AblationPath(...))."
        )
    values: dict[str, dict[int, float]] = {}
    by_seed: dict[str, dict[Any, list[float]]] = {}
    n_finished: dict[str, int] = {}
    n_repeats = 1
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        label = attrs.get(a.ATTR_ARM)
        if label is None:
            continue
        n_repeats = int(attrs.get(a.ATTR_N_REPEATS, n_repeats))
        if t.state.is_finished():
            n_finished[label] = n_finished.get(label, 0) + 1
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            values.setdefault(label, {})[int(attrs[a.ATTR_REPEAT])] = float(t.value)
            key = attrs.get(a.ATTR_SEED, ("repeat", attrs.get(a.ATTR_REPEAT)))
            by_seed.setdefault(label, {}).setdefault(key, []).append(float(t.value))
    path = memory["path"]
    policy = AblationPath.restore(path["source"], path["target"], path["params"])
    history = AblationHistory(minimize, values, n_finished, {}, n_repeats, memory)
    return policy, history, by_seed
