"""The storage, method by method: the routes that let ``RemoteStorage`` clients use it.

Writes that would leave the study unreadable are refused before the storage sees them, and
change nothing: a parameter value its distribution cannot turn back into a value (an SQLite
study written an out-of-range categorical index cannot be read again), a COMPLETE trial
without values or with NaN (which samplers then crash on). Everything else Optuna's storage
contract allows (its own conformance tests write floats outside their ranges) is passed on.

A trial that an optimization on the server is running is written only by the connection that
holds it (its worker, which sends its trial's writes on the connection it asked on), and only
with parameter values inside their distribution, unless the value was fixed by
``enqueue_trial`` (which Optuna accepts out of range, with a warning).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import msgspec
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import json_to_distribution
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._patience import StoragePatience
from optuna_spark._coordinator._read_lane import ReadLane
from optuna_spark.wire import messages as m
from optuna_spark.wire._codec import encode
from optuna_spark.wire._convert import study_to_wire
from optuna_spark.wire._convert import trial_from_wire
from optuna_spark.wire._convert import trial_to_wire

if TYPE_CHECKING:
    from optuna_spark._coordinator._server import StudyServer


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
    template = None if r.template is None else trial_from_wire(r.template)  # params checked
    if template is not None:
        _check_values(template.state, template.values)
    return s.create_new_trial(r.study_id, template)


def _set_trial_param(s: BaseStorage, r: m.SetTrialParam, held: bool = False) -> None:
    """Write a parameter its distribution can read back; on a trial a run is running
    (``held``), one inside its distribution."""
    distribution = json_to_distribution(r.distribution)
    if held:
        _check_inside(s, r, distribution)
    try:
        if isinstance(distribution, CategoricalDistribution):  # an index into the choices
            index = r.value_internal
            if not (float(index).is_integer() and 0 <= index < len(distribution.choices)):
                raise IndexError(index)
        distribution.to_external_repr(r.value_internal)
    except (IndexError, ValueError, TypeError, OverflowError):
        raise ValueError(
            f"The value {r.value_internal!r} of parameter {r.name!r} means nothing in its "
            f"distribution {distribution}."
        ) from None
    s.set_trial_param(r.trial_id, r.name, r.value_internal, distribution)


def _check_inside(s: BaseStorage, r: m.SetTrialParam, distribution: BaseDistribution) -> None:
    """A running trial's parameter lies in its distribution, as Optuna's samplers make it."""
    if optuna_adapter.distribution_contains(distribution, r.value_internal):
        return
    if r.name in s.get_trial_system_attrs(r.trial_id).get("fixed_params", {}):
        return  # enqueued out of range: Optuna warns and keeps it
    raise ValueError(
        f"The value {r.value_internal!r} of parameter {r.name!r} is outside its distribution "
        f"{distribution}; a running trial's parameters come from its sampler."
    )


def _check_values(state: TrialState, values: Sequence[float] | None) -> None:
    if state == TrialState.COMPLETE and not values:
        raise ValueError("A COMPLETE trial needs its values.")
    if values is not None and any(math.isnan(v) for v in values):
        raise ValueError("A trial's values cannot be NaN.")


def _set_trial_state_values(s: BaseStorage, r: m.SetTrialStateValues) -> bool:
    _check_values(r.state, r.values)
    return s.set_trial_state_values(r.trial_id, r.state, r.values)


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
    m.SetTrialParam: _set_trial_param,
    m.GetTrialIdFromStudyIdTrialNumber: lambda s, r: s.get_trial_id_from_study_id_trial_number(
        r.study_id, r.number
    ),
    m.GetTrialNumberFromId: lambda s, r: s.get_trial_number_from_id(r.trial_id),
    m.GetTrialParam: lambda s, r: s.get_trial_param(r.trial_id, r.name),
    m.SetTrialStateValues: _set_trial_state_values,
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


#: The requests that write to one trial.
_TRIAL_WRITES = (
    m.SetTrialParam,
    m.SetTrialStateValues,
    m.SetTrialIntermediateValue,
    m.SetTrialUserAttr,
    m.SetTrialSystemAttr,
)
#: The reads whose cost grows with the study: they take turns in the server's read lane.
_STUDY_READS = (m.GetTrials, m.GetAllStudies, m.GetNTrials, m.GetBestTrial)

#: ``guard(connection id, trial id)``: whether an optimization on the server runs the trial;
#: raises if one does and the connection does not hold it.
WriteGuard = Callable[[int, int], bool]


def register_storage_routes(
    server: StudyServer,
    storage: BaseStorage,
    patience: StoragePatience | None = None,
    guard: WriteGuard | None = None,
    lane: ReadLane | None = None,
) -> None:
    """Serve ``storage`` on ``server`` to ``RemoteStorage`` clients.

    A storage call that fails transiently is retried through ``patience`` (a worker's
    checkpoint waits out a database restart rather than failing its trial); each write to a
    trial is checked by ``guard`` first; reads of the whole study take turns in ``lane``.
    """
    patience = patience or StoragePatience(0)
    for request_type, call in _ROUTES.items():
        if guard is not None and issubclass(request_type, _TRIAL_WRITES):
            handler = _guarded(call, storage, patience, guard)
        elif lane is not None and issubclass(request_type, _STUDY_READS):
            handler = _in_lane(call, storage, patience, lane)
        else:
            handler = _plain(call, storage, patience)
        server.register(request_type, handler)


def _plain(call: Any, storage: BaseStorage, patience: StoragePatience) -> Any:
    def handler(request: Any, conn_id: int) -> Any:
        return patience.call(call, storage, request)

    return handler


def _guarded(call: Any, storage: BaseStorage, patience: StoragePatience, guard: WriteGuard) -> Any:
    def handler(request: Any, conn_id: int) -> Any:
        if guard(conn_id, request.trial_id) and isinstance(request, m.SetTrialParam):
            return patience.call(_set_trial_param, storage, request, True)
        return patience.call(call, storage, request)

    return handler


def _in_lane(call: Any, storage: BaseStorage, patience: StoragePatience, lane: ReadLane) -> Any:
    def handler(request: Any, conn_id: int) -> Any:
        # Each try takes its turn (the lane is free while a failing storage is waited out),
        # and the reply is encoded in it: encoding a study costs as much as reading it.
        return patience.call(lambda: lane.run(lambda: msgspec.Raw(encode(call(storage, request)))))

    return handler
