"""Request handlers that expose an Optuna ``BaseStorage`` method by method.

Each handler takes the storage and the decoded positional arguments and returns plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import TrialState

from optuna_spark import _codec as c

Handler = Callable[[BaseStorage, list[Any]], Any]


def _create_new_study(s: BaseStorage, a: list[Any]) -> Any:
    return s.create_new_study(c.directions_in(a[0]), a[1])


def _get_study_directions(s: BaseStorage, a: list[Any]) -> Any:
    return c.directions_out(s.get_study_directions(a[0]))


def _get_all_studies(s: BaseStorage, a: list[Any]) -> Any:
    return [c.study_out(x) for x in s.get_all_studies()]


def _create_new_trial(s: BaseStorage, a: list[Any]) -> Any:
    template = None if a[1] is None else c.trial_in(a[1])
    return s.create_new_trial(a[0], template)


def _set_trial_param(s: BaseStorage, a: list[Any]) -> Any:
    return s.set_trial_param(a[0], a[1], a[2], c.dist_in(a[3]))


def _set_trial_state_values(s: BaseStorage, a: list[Any]) -> Any:
    return s.set_trial_state_values(a[0], TrialState(a[1]), a[2])


def _get_trial(s: BaseStorage, a: list[Any]) -> Any:
    return c.trial_out(s.get_trial(a[0]))


def _get_all_trials(s: BaseStorage, a: list[Any]) -> Any:
    trials = s.get_all_trials(a[0], deepcopy=False, states=c.states_in(a[1]))
    return [c.trial_out(t) for t in trials]


def _get_n_trials(s: BaseStorage, a: list[Any]) -> Any:
    state = a[1]
    if isinstance(state, list):
        return s.get_n_trials(a[0], tuple(TrialState(x) for x in state))
    return s.get_n_trials(a[0], None if state is None else TrialState(state))


def _get_best_trial(s: BaseStorage, a: list[Any]) -> Any:
    return c.trial_out(s.get_best_trial(a[0]))


def _get_trial_params(s: BaseStorage, a: list[Any]) -> Any:
    return s.get_trial_params(a[0])


def _passthrough(name: str) -> Handler:
    def handler(s: BaseStorage, a: list[Any]) -> Any:
        return getattr(s, name)(*a)

    handler.__name__ = name
    return handler


_PASSTHROUGH = (
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
)

STORAGE_HANDLERS: dict[str, Handler] = {name: _passthrough(name) for name in _PASSTHROUGH}
STORAGE_HANDLERS.update(
    {
        "create_new_study": _create_new_study,
        "get_study_directions": _get_study_directions,
        "get_all_studies": _get_all_studies,
        "create_new_trial": _create_new_trial,
        "set_trial_param": _set_trial_param,
        "set_trial_state_values": _set_trial_state_values,
        "get_trial": _get_trial,
        "get_all_trials": _get_all_trials,
        "get_n_trials": _get_n_trials,
        "get_best_trial": _get_best_trial,
        "get_trial_params": _get_trial_params,
    }
)
