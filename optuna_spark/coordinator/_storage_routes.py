"""The storage, method by method: the routes that let ``RemoteStorage`` clients use it."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from optuna.distributions import json_to_distribution
from optuna.storages import BaseStorage

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.wire import messages as m
from optuna_spark.wire._convert import study_to_wire
from optuna_spark.wire._convert import trial_from_wire
from optuna_spark.wire._convert import trial_to_wire

if TYPE_CHECKING:
    from optuna_spark.coordinator._server import StudyServer


def _get_trials(s: BaseStorage, r: m.GetTrials) -> list[m.TrialData]:
    include = set(r.include)
    return [
        trial_to_wire(t)
        for t in s.get_all_trials(r.study_id, deepcopy=False)
        if optuna_adapter.trial_id_of(t) > r.after_trial_id
        or optuna_adapter.trial_id_of(t) in include
    ]


def _get_n_trials(s: BaseStorage, r: m.GetNTrials) -> int:
    return s.get_n_trials(r.study_id, None if r.states is None else tuple(r.states))


def _create_new_trial(s: BaseStorage, r: m.CreateNewTrial) -> int:
    template = None if r.template is None else trial_from_wire(r.template)
    return s.create_new_trial(r.study_id, template)


#: Each request, as a call of the storage.
_ROUTES: dict[type[m.Request], Any] = {
    m.CreateNewStudy: lambda s, r: s.create_new_study(r.directions, r.study_name),
    m.DeleteStudy: lambda s, r: s.delete_study(r.study_id),
    m.SetStudyUserAttr: lambda s, r: s.set_study_user_attr(r.study_id, r.key, r.value),
    m.SetStudySystemAttr: lambda s, r: s.set_study_system_attr(r.study_id, r.key, r.value),
    m.GetStudyIdFromName: lambda s, r: s.get_study_id_from_name(r.study_name),
    m.GetStudyNameFromId: lambda s, r: s.get_study_name_from_id(r.study_id),
    m.GetStudyDirections: lambda s, r: s.get_study_directions(r.study_id),
    m.GetStudyUserAttrs: lambda s, r: s.get_study_user_attrs(r.study_id),
    m.GetStudySystemAttrs: lambda s, r: s.get_study_system_attrs(r.study_id),
    m.GetAllStudies: lambda s, r: [study_to_wire(x) for x in s.get_all_studies()],
    m.CreateNewTrial: _create_new_trial,
    m.SetTrialParam: lambda s, r: s.set_trial_param(
        r.trial_id, r.name, r.value_internal, json_to_distribution(r.distribution)
    ),
    m.GetTrialIdFromStudyIdTrialNumber: lambda s, r: s.get_trial_id_from_study_id_trial_number(
        r.study_id, r.number
    ),
    m.GetTrialNumberFromId: lambda s, r: s.get_trial_number_from_id(r.trial_id),
    m.GetTrialParam: lambda s, r: s.get_trial_param(r.trial_id, r.name),
    m.SetTrialStateValues: lambda s, r: s.set_trial_state_values(r.trial_id, r.state, r.values),
    m.SetTrialIntermediateValue: lambda s, r: s.set_trial_intermediate_value(
        r.trial_id, r.step, r.value
    ),
    m.SetTrialUserAttr: lambda s, r: s.set_trial_user_attr(r.trial_id, r.key, r.value),
    m.SetTrialSystemAttr: lambda s, r: s.set_trial_system_attr(r.trial_id, r.key, r.value),
    m.GetTrial: lambda s, r: trial_to_wire(s.get_trial(r.trial_id)),
    m.GetTrials: _get_trials,
    m.GetNTrials: _get_n_trials,
    m.GetBestTrial: lambda s, r: trial_to_wire(s.get_best_trial(r.study_id)),
    m.GetTrialParams: lambda s, r: s.get_trial_params(r.trial_id),
    m.GetTrialUserAttrs: lambda s, r: s.get_trial_user_attrs(r.trial_id),
    m.GetTrialSystemAttrs: lambda s, r: s.get_trial_system_attrs(r.trial_id),
}


def register_storage_routes(server: StudyServer, storage: BaseStorage) -> None:
    """Serve ``storage`` on ``server`` to ``RemoteStorage`` clients."""
    for request_type, call in _ROUTES.items():
        server.register(request_type, _bind(call, storage))


def _bind(call: Any, storage: BaseStorage) -> Any:
    def handler(request: Any, conn_id: int) -> Any:
        return call(storage, request)

    return handler
