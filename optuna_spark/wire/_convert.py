"""Optuna's records as wire data and back (``FrozenTrial``, ``FrozenStudy``, distributions)."""

from __future__ import annotations

from optuna.distributions import distribution_to_json
from optuna.distributions import json_to_distribution
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.wire.messages import StudyData
from optuna_spark.wire.messages import TrialData


def trial_to_wire(t: FrozenTrial) -> TrialData:
    return TrialData(
        trial_id=optuna_adapter.trial_id_of(t),
        number=t.number,
        state=t.state,
        values=t.values,
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
        params=t.params,
        distributions={k: distribution_to_json(v) for k, v in t.distributions.items()},
        user_attrs=t.user_attrs,
        system_attrs=t.system_attrs,
        intermediate_values=t.intermediate_values,
    )


def trial_from_wire(data: TrialData) -> FrozenTrial:
    return FrozenTrial(
        number=data.number,
        state=data.state,
        value=None,
        values=data.values,
        datetime_start=data.datetime_start,
        datetime_complete=data.datetime_complete,
        params=data.params,
        distributions={k: json_to_distribution(v) for k, v in data.distributions.items()},
        user_attrs=data.user_attrs,
        system_attrs=data.system_attrs,
        intermediate_values=data.intermediate_values,
        trial_id=data.trial_id,
    )


def study_to_wire(s: optuna_adapter.FrozenStudy) -> StudyData:
    return StudyData(
        study_id=optuna_adapter.study_id_of(s),
        study_name=s.study_name,
        directions=list(s.directions),
        user_attrs=s.user_attrs,
        system_attrs=s.system_attrs,
    )


def study_from_wire(data: StudyData) -> optuna_adapter.FrozenStudy:
    return optuna_adapter.frozen_study(
        data.study_id, data.study_name, data.directions, data.user_attrs, data.system_attrs
    )
