"""The state and bookkeeping of a run: what ``StudyRun`` answers workers with.

It composes small pieces, each owning one decision: :class:`RunState` (running -> draining
-> done), :class:`LeaseTable` (who runs what, heartbeats, deadlines), :class:`RetryPolicy`
(lost trials) and :mod:`._recovery` (trials left RUNNING by a dead driver). Two locks keep
the sampler's work from delaying anything else: the bookkeeping lock (held briefly, never
while sampling) and the sampler's.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._validate import check_positive
from optuna_spark.coordinator import _recovery
from optuna_spark.coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark.coordinator._callback_study import CallbackStudy
from optuna_spark.coordinator._leases import Lease
from optuna_spark.coordinator._leases import LeaseTable
from optuna_spark.coordinator._output import store_tail
from optuna_spark.coordinator._placement import Sampling
from optuna_spark.coordinator._placement import check_sampling
from optuna_spark.coordinator._recovery import fail_orphans
from optuna_spark.coordinator._recovery import stamp_alive
from optuna_spark.coordinator._retry import RetryPolicy
from optuna_spark.coordinator._state import Changes
from optuna_spark.coordinator._state import Phase
from optuna_spark.coordinator._state import RunState
from optuna_spark.coordinator._state import StopReason
from optuna_spark.wire import messages as m

_logger = logging.getLogger(__name__)

Callback = Callable[[optuna.Study, FrozenTrial], None]


class RunCore:
    """The state of one distributed optimization; see :class:`StudyRun`."""

    def __init__(
        self,
        study: optuna.Study,
        *,
        n_trials: int | None = None,
        timeout: float | None = None,
        callbacks: Iterable[Callback] | None = None,
        heartbeat_grace: float = 30.0,
        trial_timeout: float | None = None,
        stop_running_trials: bool = True,
        retry_lost_trials: bool = False,
        sampling: Sampling = "driver",
        log_artifact_store: Any = None,
    ) -> None:
        check_sampling(sampling, study.sampler)
        check_positive("n_trials", n_trials, allow_zero=True)
        check_positive("timeout", timeout)
        check_positive("heartbeat_grace", heartbeat_grace)
        check_positive("trial_timeout", trial_timeout)
        self.run_id = secrets.token_hex(8)
        self.study = study
        self.n_trials = n_trials
        self.timeout = timeout
        self.callbacks = list(callbacks or ())
        self.stop_running_trials = stop_running_trials
        self.sampling = sampling
        #: Called with each finished trial (the progress bar).
        self.listeners: list[Callable[[FrozenTrial], None]] = []
        #: Called with (trial number, text) for what objectives print and log, as it comes.
        self.output_listeners: list[Callable[[int, str], None]] = []
        self.log_artifact_store = log_artifact_store
        #: Signalled on every change of state, first error and dismissed worker (not on each
        #: finished trial: waking the driver's main thread a thousand times a second would
        #: cost the service its CPU).
        self.changes = Changes()

        self._lock = threading.RLock()  # bookkeeping: leases, state, counters; held briefly
        self._sampler_lock = threading.Lock()  # study.ask() and suggestions, one at a time
        self._asking = 0  # asks between their reservation and their lease
        self._closing: str | None = None  # why the run was closed, for trials still being made
        self._callback_study = CallbackStudy(study, lambda: self.stop(StopReason.STUDY))
        #: Signalled when a trial finishes or the run changes state: asks that wait for a
        #: result (an adaptive ablation) wake on it.
        self._results = threading.Condition()
        self._state = RunState(on_change=self._changed)
        self._leases = LeaseTable(heartbeat_grace, trial_timeout)
        self._retries = RetryPolicy(study, retry_lost_trials, n_trials)
        self._storage = optuna_adapter.storage_of(study)
        self._interrupted: set[int] = set()  # trials told to stop by should_prune
        self._dismissed: set[Any] = set()  # workers (Spark partitions) told to stop
        self._n_started = 0
        self._n_finished = 0
        self._t0 = time.monotonic()
        self._stamped = 0.0
        self._checked_orphans = time.monotonic()
        optuna_adapter.clear_stop(study)
        self._stamp()
        fail_orphans(study, self.run_id)

    # -----------------------------------------------------------------------------------------
    # Read-only views.

    @property
    def n_started(self) -> int:
        return self._n_started

    @property
    def n_finished(self) -> int:
        return self._n_finished

    @property
    def n_running(self) -> int:
        return len(self._leases)

    @property
    def n_dismissed(self) -> int:
        """How many distinct workers (Spark partitions) have been told to stop."""
        return len(self._dismissed)

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def stop_reason(self) -> StopReason | None:
        return self._state.reason

    @property
    def error(self) -> BaseException | None:
        return self._state.error

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    @property
    def done(self) -> bool:
        return self._state.phase is Phase.DONE

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run is over: nothing more to hand out and nothing running."""
        return self.changes.wait_for(lambda: self.done, timeout)

    # -----------------------------------------------------------------------------------------
    # Control from the driver.

    def stop(self, reason: StopReason = StopReason.INTERRUPTED) -> None:
        """Hand out no more trials; running trials are told to stop if ``reason`` interrupts."""
        with self._lock:
            self._state.drain(reason)
            self._check_done()

    def fail_running(self, reason: str) -> None:
        """Mark every running trial FAIL now (for example when the job is cancelled).

        A trial being made at this moment is failed with the same reason when it is ready.
        """
        with self._lock:
            self._closing = self._closing or reason
            for trial_id in self._leases.ids():
                self._end_on_driver(trial_id, reason, retry=False)
            self._check_done()

    def close(self, detail: str) -> None:
        """The workers are gone (``detail`` says how): fail what still runs, end the run."""
        reason = f"worker lost: {detail}"
        with self._lock:
            self._closing = self._closing or reason
            self._state.drain(StopReason.WORKERS_GONE, detail)
            for trial_id in self._leases.ids():
                self._end_on_driver(trial_id, reason, retry=False)
            self._check_done()

    def set_error(self, error: BaseException) -> None:
        with self._lock:
            self._state.fail(error)
            self._check_done()

    def tick(self) -> None:
        """Periodic checks: lost workers, trial time limits, the run's timeout."""
        with self._lock:
            for expiry in self._leases.expired():
                self._end_on_driver(expiry.trial_id, expiry.reason, retry=expiry.lost)
            if self.timeout is not None and self.elapsed >= self.timeout:
                self._state.drain(StopReason.TIMEOUT)
            self._check_done()
        now = time.monotonic()
        if now - self._stamped > _recovery.LEASE_RENEW:
            self._stamp()
        if now - self._checked_orphans > _recovery.CHECK_EVERY:
            self._checked_orphans = now
            fail_orphans(self.study, self.run_id)  # runs that died while this one runs

    # -----------------------------------------------------------------------------------------
    # Internals; all called with the lock held, but for _await_finished.

    def _changed(self) -> None:
        self.changes.notify()
        with self._results:
            self._results.notify_all()

    def _await_finished(self, finished: int) -> None:
        """Wait (with no lock held) until a trial finishes after ``finished`` had, or the run
        changes state. The bound re-checks the sampler for trials finished elsewhere."""
        with self._results:
            self._results.wait_for(
                lambda: self._n_finished != finished or self._state.reason is not None, 1.0
            )

    def _stamp(self) -> None:
        self._stamped = time.monotonic()
        stamp_alive(self.study, self.run_id, self.done)

    def _dismiss(self, worker: m.WorkerInfo, conn_id: int) -> None:
        self._dismissed.add(worker.partition if worker.partition is not None else f"c{conn_id}")
        self.changes.notify()

    def _may_start_trial(self) -> bool:
        self._note_sampler_stop()
        if self._state.reason is None:
            if self.n_trials is not None and self._n_started >= self.n_trials:
                self._state.drain(StopReason.N_TRIALS)
            elif self.timeout is not None and self.elapsed >= self.timeout:
                self._state.drain(StopReason.TIMEOUT)
        if self._state.reason is None:
            return True
        # A lost trial's retry still runs when only the sampler had nothing left to give.
        return self._waiting_for_retry()

    def _waiting_for_retry(self) -> bool:
        return self._state.reason is StopReason.EXHAUSTED and self._retries.has_pending

    def _note_sampler_stop(self) -> None:
        # Read here, the study's stop flag is a sampler's (GridSampler, LOCOSampler,
        # BruteForceSampler, from ask or tell): nothing is left to hand out, but running
        # trials must finish. Callbacks get a study whose stop() stops the run itself
        # (StopReason.STUDY, which interrupts); one that stops the study it closes over
        # instead is told apart right after the callbacks run (see _after_trial).
        if optuna_adapter.stop_requested(self.study):
            optuna_adapter.clear_stop(self.study)
            self._state.drain(StopReason.EXHAUSTED)

    def _check_done(self) -> None:
        if self._leases or self._asking:
            return
        if self.n_trials is not None and self._n_started >= self.n_trials:
            self._state.drain(StopReason.N_TRIALS)
        if self._state.phase is Phase.DRAINING and not self._waiting_for_retry():
            self._retries.fail_unstarted(str(self._state.reason))
            self._state.finish()
            self._stamp()

    def _finish(
        self, lease: Lease, values: Any, state: TrialState | None, failure: str | None
    ) -> FrozenTrial:
        """Tell Optuna how a trial ended; a failure to do so stops the run and is raised."""
        store_tail(self._storage, optuna_adapter.trial_id_of(lease.trial), lease)
        try:
            frozen = optuna_adapter.tell(self.study, lease.trial, values, state, failure)
        except Exception as e:
            self._n_finished += 1
            with contextlib.suppress(Exception):
                trial_id = optuna_adapter.trial_id_of(lease.trial)
                self._storage.set_trial_state_values(trial_id, TrialState.FAIL)
            self._state.fail(e)
            self._check_done()
            raise
        self._note_sampler_stop()
        self._n_finished += 1
        with self._results:
            self._results.notify_all()
        return frozen

    def _after_trial(self, frozen: FrozenTrial) -> None:
        try:
            for callback in self.callbacks:
                callback(self._callback_study, copy.deepcopy(frozen))
        except Exception as e:
            self._state.fail(e)
        if optuna_adapter.stop_requested(self.study):
            # A callback that called stop() on the study object it closes over (not the one
            # it was given) stops the run, as in Study.optimize; a sampler with nothing left
            # does not interrupt anything.
            optuna_adapter.clear_stop(self.study)
            exhausted = optuna_adapter.all_points_started(self.study)
            self._state.drain(StopReason.EXHAUSTED if exhausted else StopReason.STUDY)
        for listener in self.listeners:
            try:
                listener(frozen)
            except Exception:
                _logger.exception("A progress listener failed.")

    def _end_on_driver(self, trial_id: int, reason: str, *, retry: bool) -> None:
        """Fail a running trial that its worker will not finish (lost, timed out, stopped)."""
        lease = self._leases.release(trial_id, ended_by_driver=reason)
        self._interrupted.discard(trial_id)
        where = ", ".join(
            f"{k}={lease.worker[k]}"
            for k in ("host", "executor_id", "attempt")
            if k in lease.worker
        )
        full = f"{reason} ({where})" if where else reason
        _logger.warning("Trial %d failed: %s.", lease.number, full)
        with optuna_adapter.in_optimize_loop(self.study):
            try:
                retrying = retry and self._retries.allows(
                    trial_id, self._n_started, self._state.reason
                )
                self._storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, full)
            except Exception as e:  # the storage refused: the run cannot go on
                self._n_finished += 1
                self._state.fail(e)
                self._check_done()
                return
            try:
                frozen = self._finish(lease, None, TrialState.FAIL, None)
            except Exception:
                return  # _finish has failed the run with it
            if retrying:
                self._retries.enqueue(frozen)
            self._after_trial(frozen)
