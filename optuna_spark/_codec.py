"""Optuna objects as plain data (msgpack-able lists and dicts) and back."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import distribution_to_json
from optuna.distributions import json_to_distribution
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


def dt_out(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dt_in(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def dist_out(dist: BaseDistribution) -> str:
    return distribution_to_json(dist)


def dist_in(data: str) -> BaseDistribution:
    return json_to_distribution(data)


def directions_out(directions: Sequence[StudyDirection]) -> list[int]:
    return [int(d.value) for d in directions]


def directions_in(data: Sequence[int]) -> list[StudyDirection]:
    return [StudyDirection(d) for d in data]


def states_in(data: Sequence[int] | None) -> tuple[TrialState, ...] | None:
    return None if data is None else tuple(TrialState(s) for s in data)


def trial_out(t: FrozenTrial) -> list[Any]:
    return [
        t._trial_id,
        t.number,
        int(t.state.value),
        t.values,
        dt_out(t.datetime_start),
        dt_out(t.datetime_complete),
        t.params,
        {k: dist_out(v) for k, v in t.distributions.items()},
        t.user_attrs,
        t.system_attrs,
        [[k, v] for k, v in t.intermediate_values.items()],
    ]


def trial_in(data: Sequence[Any]) -> FrozenTrial:
    (trial_id, number, state, values, start, complete, params, dists, user, system, inter) = data
    return FrozenTrial(
        number=number,
        state=TrialState(state),
        value=None,
        values=values,
        datetime_start=dt_in(start),
        datetime_complete=dt_in(complete),
        params=params,
        distributions={k: dist_in(v) for k, v in dists.items()},
        user_attrs=user,
        system_attrs=system,
        intermediate_values={int(k): v for k, v in inter},
        trial_id=trial_id,
    )


def study_out(s: FrozenStudy) -> list[Any]:
    return [s.study_name, directions_out(s.directions), s.user_attrs, s.system_attrs, s._study_id]


def study_in(data: Sequence[Any]) -> FrozenStudy:
    name, directions, user, system, study_id = data
    return FrozenStudy(
        study_name=name,
        direction=None,
        directions=directions_in(directions),
        user_attrs=user,
        system_attrs=system,
        study_id=study_id,
    )
