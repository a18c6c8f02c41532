"""What a worker's tell means for Optuna: the values or state to tell, and what to record."""

from __future__ import annotations

import dataclasses
from typing import Any

from optuna.trial import TrialState

from optuna_spark.coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark.coordinator._attrs import ATTR_INTERRUPTED
from optuna_spark.coordinator._attrs import ATTR_TRACEBACK
from optuna_spark.coordinator._state import StopReason
from optuna_spark.wire import messages as m

Tell = m.TellValues | m.TellPruned | m.TellFailed


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How to finish a trial: ``values`` with ``state=None`` go through Optuna's checks."""

    values: list[float] | None
    state: TrialState | None
    failure: str | None  # the reason logged and recorded for a FAIL the worker reported
    attrs: dict[str, Any]  # system attributes to record on the trial first


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
        return Outcome(None, TrialState.PRUNED, None, attrs)
    failure = f"{request.error.type}: {request.error.message}"
    attrs = {ATTR_FAIL_REASON: failure, ATTR_TRACEBACK: request.error.traceback}
    return Outcome(None, TrialState.FAIL, failure, attrs)
