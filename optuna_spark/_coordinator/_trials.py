"""Writing a trial's end to the storage when its worker cannot: one way, used everywhere."""

from __future__ import annotations

import logging

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from optuna_spark._coordinator._attrs import ATTR_FAIL_REASON

_logger = logging.getLogger(__name__)


def fail_trial(storage: BaseStorage, trial_id: int, reason: str) -> bool:
    """Record ``reason`` on a RUNNING trial and make it FAIL; returns whether it did.

    A trial that has finished meanwhile (another driver, its own worker) is left as it is and
    ``False`` returned; any other error of the storage is raised.
    """
    try:
        storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


def try_fail_trial(storage: BaseStorage, trial_id: int, reason: str) -> bool:
    """:func:`fail_trial`, when the run is already failing for another reason: a storage error
    is logged, not raised (the run's own error is the one to report)."""
    try:
        return fail_trial(storage, trial_id, reason)
    except Exception:
        _logger.warning("Could not mark the trial with id %d as failed.", trial_id, exc_info=True)
        return False
