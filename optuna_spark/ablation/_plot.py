"""``plot_ablation``: the report as a plotly figure, in the style of ``optuna.visualization``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._report import ablation_report

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

_BASE_COLOR = "rgb(150, 150, 150)"
_SIGNIFICANT_COLOR = "rgb(66, 146, 198)"  # optuna.visualization's bar colour
_NOT_SIGNIFICANT_COLOR = "rgb(198, 219, 239)"


def _groups(reference: str) -> tuple[tuple[str, str, Callable[[Any], bool]], ...]:
    """The bars' groups, one trace each, in the legend's order: (name, colour, membership)."""
    return (
        (reference, _BASE_COLOR, lambda r: r.arm == reference),
        ("significant", _SIGNIFICANT_COLOR, lambda r: r.arm != reference and r.significant),
        (
            "not significant",
            _NOT_SIGNIFICANT_COLOR,
            lambda r: r.arm != reference and not r.significant,
        ),
    )


def plot_ablation(
    study: optuna.Study,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    target_name: str = "Objective Value",
    direction: str | StudyDirection | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> go.Figure:
    """Plot each arm's mean with its confidence interval, the base marked, as horizontal bars.

    Arms are ordered as in :func:`ablation_report` (the most important component at the top,
    under the base). Arms whose difference from the base is significant after Holm's
    correction are dark, the others light; a dashed line marks the base's mean, and hovering a
    bar shows its numbers.

    Args:
        study: A study run with :class:`LOCOSampler`.
        target: See :func:`ablation_report`.
        target_name: The value's name on the axis.
        direction: See :func:`ablation_report`.
        confidence: Level of the error bars (confidence intervals of the means).
        alpha: Family-wise significance level.

    Returns:
        A ``plotly.graph_objects.Figure``.

    Example:

        .. testcode::

            import optuna
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import get_arm
            from optuna_spark.ablation import plot_ablation


            def objective(trial):
                arm = get_arm(trial)
                return 1.0 + (arm.name == "trick") + 0.1 * arm.repeat


            study = optuna.create_study(sampler=LOCOSampler(components=["trick"], n_repeats=2))
            study.optimize(objective)
            fig = plot_ablation(study)
            assert fig.data  # fig.show(), or fig.write_html("ablation.html")
    """
    go = import_ablation_dependency("plotly.graph_objects")
    report = ablation_report(
        study, target=target, direction=direction, confidence=confidence, alpha=alpha
    )
    reference = str(report.attrs["reference"])
    rows = list(report.itertuples(index=False))[::-1]  # plotly draws the first bar lowest
    fig = go.Figure()
    _add_bars(fig, rows, confidence, reference)
    _add_base_line(fig, report, reference)
    _lay_out(fig, target_name, [r.arm for r in rows])
    return fig


def _add_bars(fig: go.Figure, rows: list[Any], confidence: float, reference: str) -> None:
    """One trace per group of arms (the reference, significant ones, the others)."""
    for name, color, member in _groups(reference):
        chosen = [r for r in rows if member(r)]
        if chosen:
            fig.add_trace(_bars(name, color, chosen, confidence, reference))


def _lay_out(fig: go.Figure, target_name: str, arms: list[str]) -> None:
    """The figure's title, axes (arms in the report's order) and legend."""
    fig.update_layout(
        title="Ablation",
        xaxis_title=target_name,
        yaxis_title="Arm",
        yaxis={"categoryorder": "array", "categoryarray": arms},
        barmode="overlay",
        showlegend=True,
    )


def _bars(name: str, color: str, rows: list[Any], confidence: float, reference: str) -> go.Bar:
    """One trace of horizontal bars: the rows' means, with error bars, labels and hover text."""
    import plotly.graph_objects as go

    return go.Bar(
        name=name,
        orientation="h",
        x=[r.mean for r in rows],
        y=[r.arm for r in rows],
        marker_color=color,
        error_x={
            "type": "data",
            "symmetric": False,
            "array": [_nan0(r.ci_high - r.mean) for r in rows],
            "arrayminus": [_nan0(r.mean - r.ci_low) for r in rows],
        },
        text=[_label(r, reference) for r in rows],
        # Inside the bar, at its start: the error bar extends from the bar's end.
        textposition="inside",
        insidetextanchor="start",
        hovertext=[_hover(r, confidence, reference) for r in rows],
        hovertemplate="%{hovertext}<extra></extra>",
    )


def _add_base_line(fig: go.Figure, report: pd.DataFrame, reference: str) -> None:
    """A dashed vertical line at the reference's mean, when the report has one."""
    base = report[report["arm"] == reference]
    if len(base) and math.isfinite(base["mean"].iloc[0]):
        fig.add_vline(
            x=float(base["mean"].iloc[0]),
            line_dash="dash",
            line_color=_BASE_COLOR,
            annotation_text=reference,
        )


def _nan0(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def _label(r: Any, reference: str) -> str:
    if r.arm == reference or not math.isfinite(r.diff):
        return ""
    return f"{r.diff:+.3g}{' *' if r.significant else ''}"


def _hover(r: Any, confidence: float, reference: str) -> str:
    lines = [
        f"<b>{r.arm}</b>",
        f"n = {r.n}",
        f"mean = {r.mean:.4g} ({confidence:.0%} CI {r.ci_low:.4g} to {r.ci_high:.4g})",
    ]
    if r.arm != reference:
        lines.append(f"difference from {reference} = {r.diff:+.4g}")
        if r.finding:
            lines.append(r.finding)
        if r.test:
            lines.append(f"{r.test} test: p = {r.p_value:.3g}, Holm-adjusted p = {r.p_holm:.3g}")
    return "<br>".join(lines)
