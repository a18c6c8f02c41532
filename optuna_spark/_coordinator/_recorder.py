"""The recorder: how a run writes ended trials to the storage and hands them on.

A trial's end is known under the run's bookkeeping lock (a worker told it, or the run ended
it); everything after that happens here, never under that lock: the storage writes (the
trial's output, its attributes, Optuna's tell), then releasing the trial's lease (only once
the storage has its end), the listeners (the progress bar), and the user's callbacks.

A trial its worker told is recorded in that worker's request (a slow write delays that
worker alone); a trial the run ends itself (lost, timed out, stopped), on the record stage of
the :class:`~._finisher.Finisher`, since the run decides that under its lock. Callbacks run
on the callback stage, in the order the trials were recorded, off every worker's path.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._finisher import Finisher
from optuna_spark._coordinator._finisher import FollowUp
from optuna_spark._coordinator._leases import Lease
from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark._coordinator._outcome import Outcome
from optuna_spark._coordinator._outcome import record
from optuna_spark._coordinator._trials import try_fail_trial
from optuna_spark.wire.spec import RunConfig

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunHooks:
    """What the recorder tells its run (each called with no lock held).

    Attributes:
        recorded: A trial's end is in the storage, or a retry was decided: asks waiting for a
            result may go on.
        failed: The storage or a callback raised: the run fails with it.
        study_stopped: A callback called ``stop()`` on the study it closes over.
        idle: The recorder ran out of work: the run may be over.
    """

    recorded: Callable[[], None]
    failed: Callable[[BaseException], None]
    study_stopped: Callable[[], None]
    idle: Callable[[], None]


#: Off the lock, before a lost trial is failed: whether it runs again (``trial_id``).
DecideRetry = Callable[[int], bool]
#: After a lost trial is recorded (``None``: its write failed): make its retry if allowed.
MakeRetry = Callable[[FrozenTrial | None, bool], None]


class Recorder:
    """Records a run's ended trials, in the order they ended, then runs the callbacks.

    Args:
        run_id: The run's id (names the threads).
        study: The run's study: what callbacks close over (its stop flag).
        sampler_study: The study trials are told through (the sampler's ``after_trial``).
        callback_study: The study callbacks are given (its ``stop()`` stops the run).
        config: The run's config (callbacks, artifact store).
        lock: The run's bookkeeping lock, which guards ``leases``.
        leases: The run's lease table: a trial's lease is released once its end is written.
        hooks: What the recorder tells the run.
    """

    def __init__(
        self,
        run_id: str,
        study: optuna.Study,
        sampler_study: optuna.Study,
        callback_study: optuna.Study,
        config: RunConfig,
        lock: threading.RLock,
        leases: LeaseTable,
        hooks: RunHooks,
    ) -> None:
        self._study = study
        self._sampler_study = sampler_study
        self._callback_study = callback_study
        self._config = config
        self._lock = lock
        self._leases = leases
        self._hooks = hooks
        self._storage = optuna_adapter.storage_of(study)
        self._finisher = Finisher(f"optuna-spark-run-{run_id}", hooks.idle)
        #: Called with each finished trial, as soon as it is recorded (the progress bar).
        self.listeners: list[Callable[[FrozenTrial], None]] = []
        #: Trials whose end has been written (or whose write failed).
        self.n_finished = 0
        self._in_flight = 0  # told trials being recorded in their requests' threads
        self._counts = threading.Lock()

    @property
    def busy(self) -> bool:
        """Whether a trial is still being recorded, or its callbacks still run."""
        return self._in_flight > 0 or self._finisher.busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._finisher.wait_idle(timeout)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` after the trials queued so far are recorded (the run's end)."""
        self._finisher.submit(job)

    def told(self, lease: Lease, outcome: Outcome, traceback: str | None, callbacks: bool) -> None:
        """Record a trial its worker ended, in the calling thread: the worker's own request,
        never under the run's lock, so that a slow write delays that worker alone. Its
        callbacks follow on the callback stage. ``traceback`` is logged for a caught failure;
        ``callbacks=False`` (an uncaught error, raised by ``optimize``) skips both."""
        with self._counts:
            self._in_flight += 1
        try:
            frozen = self._record(lease, outcome)
        finally:
            with self._counts:
                self._in_flight -= 1
        if frozen is not None and callbacks:
            if traceback is not None:
                _logger.warning(
                    "Trial %d failed with the worker's traceback:\n%s", lease.number, traceback
                )
            follow_up = self._follow_up(frozen)
            if follow_up is not None:
                self._finisher.submit_follow_up(follow_up)
        self._hooks.idle()

    def lost(
        self, lease: Lease, reason: str, decide: DecideRetry | None, make: MakeRetry | None
    ) -> None:
        """Record a trial the run ended (``reason``), deciding first whether it runs again."""

        def job() -> FollowUp | None:
            allowed = decide is not None and decide(optuna_adapter.trial_id_of(lease.trial))
            frozen = self._record(lease, Outcome.failed(reason))
            if make is not None:
                make(frozen, allowed)
            self._hooks.recorded()
            return None if frozen is None else self._follow_up(frozen)

        self._finisher.submit(job)

    def _record(self, lease: Lease, outcome: Outcome) -> FrozenTrial | None:
        """Write the trial's end, then release its lease; a storage error fails the run."""
        trial_id = optuna_adapter.trial_id_of(lease.trial)
        frozen: FrozenTrial | None = None
        try:
            frozen = record(self._sampler_study, lease, outcome, self._config.log_artifact_store)
        except Exception as e:
            self._hooks.failed(e)
            # Through the run's storage: after an outage past storage_grace, it retries once
            # more, so that a storage back within twice the grace leaves nothing RUNNING.
            storage = optuna_adapter.storage_of(self._sampler_study)
            try_fail_trial(storage, trial_id, f"the driver could not record it: {e!r}")
        with self._lock:
            self._leases.release(trial_id)
            self.n_finished += 1
        if frozen is not None:
            for listener in self.listeners:
                try:
                    listener(frozen)
                except Exception:
                    _logger.exception("A progress listener failed.")
        self._hooks.recorded()
        return frozen

    def _follow_up(self, frozen: FrozenTrial) -> FollowUp | None:
        """The callback-stage job of ``frozen``: none when there are no callbacks."""
        if not self._config.callbacks:
            return None
        return lambda: self._callbacks(frozen)

    def _callbacks(self, frozen: FrozenTrial) -> None:
        """The user's callbacks (on the finisher's callback thread)."""
        try:
            with optuna_adapter.in_optimize_loop(self._study):
                for callback in self._config.callbacks:
                    callback(self._callback_study, copy.deepcopy(frozen))
        except Exception as e:
            self._hooks.failed(e)
        if optuna_adapter.stop_requested(self._study):
            # A callback that called stop() on the study it closes over (rather than on the
            # one it was given) stops the run, as in Study.optimize.
            optuna_adapter.clear_stop(self._study)
            self._hooks.study_stopped()
