"""The retry policy for lost trials: run a lost trial's parameters once more, when allowed."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._attrs import ATTR_RETRY_OF
from optuna_spark._coordinator._attrs import ATTR_RETRY_SKIPPED
from optuna_spark._coordinator._state import StopReason
from optuna_spark._coordinator._trials import try_fail_trial


class RetryPolicy:
    """Decides whether a lost trial runs again, and keeps the retries not started yet.

    Whether a lost trial is retried is decided off the bookkeeping lock (the decision reads
    the trial), so between the loss and the decision the trial counts as *deciding*: a run
    with nothing else to hand out waits for the decision rather than ending.

    A retry is a WAITING trial with the lost trial's parameters and the sampler's own records
    (GridSampler's grid id, LOCOSampler's arm), so that ``study.ask()`` hands it out next and
    it re-runs the same point. It counts as one of ``n_trials``. A retry is never retried,
    and none is made when the run is stopping or every one of ``n_trials`` has started; the
    reason is recorded on the lost trial (``optuna_spark:retry_skipped``).

    Args:
        study: The run's study.
        enabled: Whether lost trials are retried at all.
        n_trials: The run's ``n_trials`` (``None``: no limit).
    """

    def __init__(self, study: optuna.Study, enabled: bool, n_trials: int | None) -> None:
        self._study = study
        self.enabled = enabled
        self._n_trials = n_trials
        self._pending: set[int] = set()
        #: Lost trials whose retry is being decided.
        self.deciding = 0

    @property
    def has_pending(self) -> bool:
        """Whether retries wait to be handed out."""
        return bool(self._pending)

    @property
    def may_come(self) -> bool:
        """Whether a retry waits to be handed out, or may soon."""
        return bool(self._pending) or self.deciding > 0

    def started(self, trial_id: int) -> None:
        """``study.ask()`` returned ``trial_id``; if it was a pending retry, it is running."""
        self._pending.discard(trial_id)

    def allows(self, trial_id: int, n_started: int, stopping: StopReason | None) -> bool:
        """Whether the lost, still RUNNING trial ``trial_id`` may run again.

        Called before the trial is failed: when it may not, the reason is recorded on it.
        """
        if not self.enabled:
            return False
        storage = optuna_adapter.storage_of(self._study)
        why_not = None
        if ATTR_RETRY_OF in storage.get_trial_system_attrs(trial_id):
            why_not = "it was itself a retry"
        elif stopping is not None and stopping.interrupts:
            why_not = f"the optimization is stopping ({stopping})"
        elif self._n_trials is not None and n_started + len(self._pending) >= self._n_trials:
            why_not = f"all n_trials={self._n_trials} trials have started"
        if why_not is not None:
            storage.set_trial_system_attr(trial_id, ATTR_RETRY_SKIPPED, why_not)
        return why_not is None

    def add(self, trial_id: int) -> None:
        """The retry made by :meth:`create` waits to be handed out."""
        self._pending.add(trial_id)

    def create(self, lost: FrozenTrial) -> int:
        """Create the retry of ``lost`` (failed by now) as a WAITING trial; returns its id.

        ``study.ask()`` hands it out next.
        """
        system_attrs = {
            k: v
            for k, v in lost.system_attrs.items()
            if not k.startswith("optuna_spark:") and not k.startswith("constraints")
        }
        system_attrs[ATTR_RETRY_OF] = lost.number
        retry = optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=lost.params,
            distributions=lost.distributions,
            user_attrs=lost.user_attrs,
            system_attrs=system_attrs,
        )
        storage = optuna_adapter.storage_of(self._study)
        return storage.create_new_trial(optuna_adapter.study_id_of(self._study), retry)

    def take_unstarted(self) -> set[int]:
        """The retries never handed out, forgotten here (the run ends: :meth:`fail`)."""
        pending, self._pending = self._pending, set()
        return pending

    def fail(self, trial_ids: set[int], why: str) -> None:
        """Fail retries the run ended without starting (or they would wait for the next)."""
        storage = optuna_adapter.storage_of(self._study)
        for trial_id in trial_ids:
            try_fail_trial(storage, trial_id, f"retry not run: the optimization ended ({why})")
