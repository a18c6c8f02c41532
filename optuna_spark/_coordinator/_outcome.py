"""A trial's end: what a worker's tell means for Optuna, and writing it to the storage."""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark._coordinator._attrs import ATTR_INTERRUPTED
from optuna_spark._coordinator._attrs import ATTR_PRUNED_AT
from optuna_spark._coordinator._attrs import ATTR_TRACEBACK
from optuna_spark._coordinator._leases import Lease
from optuna_spark._coordinator._leases import write_reports
from optuna_spark._coordinator._output import store_tail
from optuna_spark._coordinator._output import upload_log
from optuna_spark._coordinator._state import StopReason
from optuna_spark.wire import messages as m
from optuna_spark.wire._errors import rebuild_error

Tell = m.TellValues | m.TellPruned | m.TellFailed


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How to finish a trial: ``values`` with ``state=None`` go through Optuna's checks."""

    values: list[float] | None
    state: TrialState | None
    detail: str | None  # what Optuna's log line says: why it was pruned, or why it failed
    attrs: dict[str, Any]  # system attributes to record on the trial first

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        """A trial the run ends itself (its worker lost, its time up, the run interrupted)."""
        return cls(None, TrialState.FAIL, None, {ATTR_FAIL_REASON: reason})


def outcome_of(request: Tell, interrupted_by: StopReason | None) -> Outcome:
    """The outcome ``request`` reports; ``interrupted_by`` is why the run told it to stop."""
    if isinstance(request, m.TellValues):
        if request.unusable is not None:  # Optuna's own message for a value it cannot cast
            return Outcome(
                None, TrialState.FAIL, request.unusable, {ATTR_FAIL_REASON: request.unusable}
            )
        return Outcome(request.values, None, None, {})
    if isinstance(request, m.TellPruned):
        attrs = {} if interrupted_by is None else {ATTR_INTERRUPTED: str(interrupted_by)}
        return Outcome(None, TrialState.PRUNED, request.message, attrs)
    failure = f"{request.error.type}: {request.error.message}"
    attrs = {ATTR_FAIL_REASON: failure, ATTR_TRACEBACK: request.error.traceback}
    # Optuna logs repr() of the objective's exception: the same type here, rebuilt.
    return Outcome(None, TrialState.FAIL, repr(rebuild_error(request.error)), attrs)


def record(study: optuna.Study, lease: Lease, outcome: Outcome, log_store: Any) -> FrozenTrial:
    """Write the trial's end as ``Study.optimize`` would, and return the finished trial.

    First what the trial printed (the last part on the trial; the whole as an artifact when
    ``log_store`` is given) and the outcome's attributes, then Optuna's own tell (its value
    checks, the sampler's ``after_trial``, its log line). Raises what the storage raises.
    """
    storage = optuna_adapter.storage_of(study)
    trial_id = optuna_adapter.trial_id_of(lease.trial)
    write_reports(lease)  # those the storage could not take while it failed
    store_tail(storage, trial_id, lease)
    if log_store is not None and lease.output:
        upload_log(log_store, storage, trial_id, lease.number, "".join(lease.output))
    attrs = outcome.attrs
    if lease.pruned_at is not None:
        attrs = {**attrs, ATTR_PRUNED_AT: lease.pruned_at}
    for key, value in attrs.items():
        storage.set_trial_system_attr(trial_id, key, value)
    return optuna_adapter.tell(study, lease.trial, outcome.values, outcome.state, outcome.detail)
