"""``pbt_report`` and ``plot_pbt``: the population's lineage, read from any storage."""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_spark.pbt import _population as p

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

_EXTRA = "pip install 'optuna-spark[pbt]'"


def _need(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"PBT reports and plots need {name.split('.')[0]}; install it with `{_EXTRA}`."
        ) from e


@dataclasses.dataclass(frozen=True)
class Segment:
    """Where a trial stands in a Population Based Training study (see :func:`get_segment`).

    Attributes:
        member: The member it trains.
        generation: How many segments its model trained before it (its parent's generation
            plus one; 0 for a first segment).
        parent: The trial (number) whose checkpoint it starts from; ``None`` for a first
            segment (it trains from scratch).
        exploited: The member whose checkpoint and hyperparameters it copied, or ``None``
            when it continues its own member's.
        changes: On an exploit, each hyperparameter it changed: ``[the member's, the new]``.
    """

    member: int
    generation: int
    parent: int | None
    exploited: int | None
    changes: dict[str, list[Any]]


def get_segment(trial: optuna.trial.BaseTrial | FrozenTrial) -> Segment | None:
    """The segment ``trial`` trains, from its user attributes; ``None`` for a trial that
    :class:`PBTSampler` did not hand out.

    In the objective it says, for example, from which step to count
    (``segment.generation * steps_per_segment``).
    """
    attrs = trial.user_attrs
    if p.MEMBER not in attrs:
        return None
    return Segment(
        attrs[p.MEMBER],
        attrs[p.GENERATION],
        attrs.get(p.PARENT),
        attrs.get(p.EXPLOITED),
        dict(attrs.get(p.CHANGES) or {}),
    )


@dataclasses.dataclass(frozen=True)
class PBTReport:
    """A Population Based Training study, read back from its trials.

    Attributes:
        segments: One row per segment (indexed by trial number): ``member``,
            ``generation``, ``parent``, ``exploited``, ``state``, ``score`` (its value, or
            last reported value) and one column per hyperparameter.
        best_member: The member whose latest score is best.
        best_trial: That member's latest scored segment (the model to keep).
        schedule: The hyperparameters that produced ``best_trial``, segment by segment: its
            chain of parents from a first segment, across exploits (indexed by the segment's
            place in the chain, from 0: ``trial``, ``member``, ``score`` and the
            hyperparameters). This is the schedule to train with.
    """

    segments: pd.DataFrame
    best_member: int | None
    best_trial: int | None
    schedule: pd.DataFrame


def pbt_report(study: optuna.Study) -> PBTReport:
    """The lineage of every member of ``study`` (run by :class:`PBTSampler`), and the best
    member's schedule. Works on any storage, during the study or after it.

    Raises:
        ValueError: No trial of the study was handed out by ``PBTSampler``.
    """
    pd = _need("pandas")
    trials = [t for t in study.get_trials(deepcopy=False) if p.MEMBER in t.user_attrs]
    if not trials:
        raise ValueError(
            f"Study '{study.study_name}' has no Population Based Training segment: run it "
            "with optuna_spark.pbt.PBTSampler."
        )
    names = sorted({name for t in trials for name in t.params})
    rows = [_row(t, names) for t in trials]
    segments = pd.DataFrame(rows).set_index("trial")
    size = max(t.user_attrs[p.MEMBER] for t in trials) + 1
    population = p.Population.of(trials, size, n_generations=1)
    ranked = population.ranked(study.direction)
    best = ranked[0].scored if ranked else None
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    chain: list[FrozenTrial] = []
    node = best
    while node is not None and len(chain) <= len(by_number):
        chain.append(node)
        parent = node.user_attrs.get(p.PARENT)
        node = by_number.get(parent) if isinstance(parent, int) else None
    schedule = pd.DataFrame(
        [
            {
                "segment": i,
                "trial": t.number,
                "member": t.user_attrs[p.MEMBER],
                "score": p.score_of(t),
                **{n: t.params.get(n) for n in names},
            }
            for i, t in enumerate(reversed(chain))
        ],
        columns=["segment", "trial", "member", "score", *names],
    ).set_index("segment")
    return PBTReport(
        segments=segments,
        best_member=ranked[0].index if ranked else None,
        best_trial=None if best is None else best.number,
        schedule=schedule,
    )


def _row(trial: FrozenTrial, names: list[str]) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "member": attrs[p.MEMBER],
        "generation": attrs[p.GENERATION],
        "parent": attrs.get(p.PARENT),
        "exploited": attrs.get(p.EXPLOITED),
        "state": trial.state.name,
        "score": p.score_of(trial),
        **{name: trial.params.get(name) for name in names},
    }


def plot_pbt(study: optuna.Study) -> go.Figure:
    """The population over generations, in the style of ``optuna.visualization``: each
    member's score (exploits marked ``x``, with the member they copied) and, below, each
    hyperparameter's value per member: the schedules PBT found."""
    go = _need("plotly.graph_objects")
    subplots = _need("plotly.subplots")
    segments = pbt_report(study).segments
    names = [c for c in segments.columns if c not in _ROW_COLUMNS]
    figure = subplots.make_subplots(
        rows=1 + len(names),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=["score", *names],
    )
    palette = _palette()
    for member, rows in segments.groupby("member"):
        rows = rows.sort_values("generation")
        color = palette[int(member) % len(palette)]
        figure.add_trace(
            go.Scatter(
                x=rows["generation"],
                y=rows["score"],
                mode="lines+markers",
                name=f"member {member}",
                legendgroup=str(member),
                line={"color": color},
            ),
            row=1,
            col=1,
        )
        exploits = rows[rows["exploited"].notna()]
        figure.add_trace(
            go.Scatter(
                x=exploits["generation"],
                y=exploits["score"],
                mode="markers",
                marker={"symbol": "x", "size": 11, "color": color},
                text=[f"copied member {int(m)}" for m in exploits["exploited"]],
                name=f"member {member}: exploits",
                legendgroup=str(member),
                showlegend=False,
            ),
            row=1,
            col=1,
        )
        for i, name in enumerate(names, start=2):
            figure.add_trace(
                go.Scatter(
                    x=rows["generation"],
                    y=rows[name],
                    mode="lines+markers",
                    line={"color": color, "shape": "hv"},
                    legendgroup=str(member),
                    showlegend=False,
                ),
                row=i,
                col=1,
            )
    figure.update_xaxes(title_text="generation", row=1 + len(names), col=1)
    figure.update_layout(title="Population Based Training", height=300 + 200 * len(names))
    return figure


_ROW_COLUMNS = {"member", "generation", "parent", "exploited", "state", "score"}


def _palette() -> list[str]:
    colors = _need("plotly.colors")
    return list(colors.qualitative.Plotly)
