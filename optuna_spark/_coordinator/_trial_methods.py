"""What a worker may ask of the driver's real ``optuna.Trial``, request by request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import distribution_to_json

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.checkpoint._api import ATTR_CHECKPOINT
from optuna_spark.wire import messages as m

TrialMethod = Callable[[optuna.Trial, Any], Any]


def _suggest_float(t: optuna.Trial, r: m.SuggestFloat) -> float:
    return t.suggest_float(r.name, r.low, r.high, step=r.step, log=r.log)


def _suggest_int(t: optuna.Trial, r: m.SuggestInt) -> int:
    return t.suggest_int(r.name, r.low, r.high, step=r.step, log=r.log)


def _suggest_categorical(t: optuna.Trial, r: m.SuggestCategorical) -> Any:
    return t.suggest_categorical(r.name, r.choices)


def _set_user_attr(t: optuna.Trial, r: m.SetUserAttr) -> None:
    t.set_user_attr(r.key, r.value)


def _set_checkpoint(t: optuna.Trial, r: m.SetCheckpoint) -> None:
    trial_id = optuna_adapter.trial_id_of(t)
    t.storage.set_trial_system_attr(trial_id, ATTR_CHECKPOINT, r.record)


def _set_constraint(t: optuna.Trial, r: m.SetConstraint) -> None:
    t.set_constraint(r.key, r.value)


def _get_running_trial(t: optuna.Trial, r: m.GetRunningTrial) -> m.RunningTrialData:
    return m.RunningTrialData(
        params=t.params,
        distributions={k: distribution_to_json(v) for k, v in t.distributions.items()},
        user_attrs=t.user_attrs,
        datetime_start=t.datetime_start,
        constraints=t.constraints,
    )


TRIAL_METHODS: dict[type[m.TrialRequest], TrialMethod] = {
    m.SuggestFloat: _suggest_float,
    m.SuggestInt: _suggest_int,
    m.SuggestCategorical: _suggest_categorical,
    m.SetUserAttr: _set_user_attr,
    m.SetConstraint: _set_constraint,
    m.SetCheckpoint: _set_checkpoint,
    m.GetRunningTrial: _get_running_trial,
}

#: The requests that run the sampler (they take the run's sampler lock).
SAMPLING: tuple[type[m.TrialRequest], ...] = (
    m.SuggestFloat,
    m.SuggestInt,
    m.SuggestCategorical,
)
