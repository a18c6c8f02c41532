"""``StudyRun``: one distributed ``optimize`` of a study, served to workers.

Workers ask for trials, run the objective and tell the outcome. Everything that decides
anything (the sampler, the pruner, ``n_trials``, ``timeout``, callbacks, stopping) happens
here, on the coordinator's own ``optuna.Study``. The run is composed of small parts, each
owning one decision: :class:`RunState` (running -> draining -> done), :class:`Handout`
(whether a trial may start), :class:`LeaseTable` (who runs what, heartbeats, deadlines),
:class:`RetryPolicy` (lost trials), :class:`Finisher` (recording ended trials and running
callbacks, in order, off every request's path) and :mod:`._run_stamps` (this run's liveness
in the storage, and the trials of dead runs).

Locks: the bookkeeping lock guards those parts and is held only for in-memory work: never
while sampling, pruning, writing to the storage or running user code. The sampler lock
serializes asks and suggestions (one seeded sampler, each grid point handed out once).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator import _asking
from optuna_spark._coordinator._handout import Handout
from optuna_spark._coordinator._handout import Verdict
from optuna_spark._coordinator._leases import Lease
from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark._coordinator._leases import worker_key
from optuna_spark._coordinator._leases import worker_record
from optuna_spark._coordinator._outcome import Tell
from optuna_spark._coordinator._outcome import outcome_of
from optuna_spark._coordinator._patience import StoragePatience
from optuna_spark._coordinator._profiles import ProfileWatch
from optuna_spark._coordinator._recorder import Recorder
from optuna_spark._coordinator._recorder import RunHooks
from optuna_spark._coordinator._resumes import ResumePolicy
from optuna_spark._coordinator._resumes import Resumer
from optuna_spark._coordinator._retry import RetryPolicy
from optuna_spark._coordinator._run_stamps import RunStamp
from optuna_spark._coordinator._run_stamps import fail_leftovers
from optuna_spark._coordinator._run_storage import storage_for_asks
from optuna_spark._coordinator._run_study import RunStudy
from optuna_spark._coordinator._run_views import RunViews
from optuna_spark._coordinator._sampling_placement import check_sampling
from optuna_spark._coordinator._state import Changes
from optuna_spark._coordinator._state import Phase
from optuna_spark._coordinator._state import RunState
from optuna_spark._coordinator._state import StopReason
from optuna_spark._coordinator._trial_desk import TrialDesk
from optuna_spark._handout import Availability
from optuna_spark.wire import messages as m
from optuna_spark.wire._errors import rebuild_error
from optuna_spark.wire.spec import Callback
from optuna_spark.wire.spec import RunConfig
from optuna_spark.wire.spec import Sampling

_logger = logging.getLogger(__name__)


class StudyRun(RunViews):
    """One distributed optimization of ``study``, served to workers by a ``StudyServer``.

    Args:
        study: The coordinator's study; its sampler and pruner make every decision.
        n_trials: How many trials this run starts at most.
        timeout: Seconds after which no new trial starts.
        callbacks: ``callback(study, frozen_trial)`` after each trial, off every worker's path.
        heartbeat_grace: Seconds of silence after which a running trial is failed as lost.
        trial_timeout: Seconds a trial may run before it is failed with reason "timeout".
        stop_running_trials: Tell running trials to stop when the run stops early.
        retry_lost_trials: Re-run the parameters of a trial whose worker was lost, once.
        resume_lost_trials: How many times a trial whose worker was lost resumes.
        checkpoint_store: The Optuna artifact store workers save checkpoints to.
        keep_checkpoints: Keep finished trials' last checkpoints.
        storage_grace: Seconds the run rides out a storage that fails transiently.
        sampling: Where parameters are sampled: ``"driver"`` or ``"workers"``.
        log_artifact_store: An Optuna artifact store for each trial's whole output.
        max_concurrent_trials: How many of the run's trials may be in flight at once.

    Each is described in full on :class:`~optuna_spark.remote.RunConfig`, which
    :meth:`from_config` takes whole.

    See :mod:`optuna_spark.remote` for an example with workers outside Spark.
    """

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
        resume_lost_trials: int = 0,
        checkpoint_store: Any = None,
        keep_checkpoints: bool = False,
        storage_grace: float = 60.0,
        sampling: Sampling = "driver",
        log_artifact_store: Any = None,
        max_concurrent_trials: int | None = None,
    ) -> None:
        config = RunConfig.of(
            callbacks,
            n_trials=n_trials,
            timeout=timeout,
            heartbeat_grace=heartbeat_grace,
            trial_timeout=trial_timeout,
            stop_running_trials=stop_running_trials,
            retry_lost_trials=retry_lost_trials,
            resume_lost_trials=resume_lost_trials,
            checkpoint_store=checkpoint_store,
            keep_checkpoints=keep_checkpoints,
            storage_grace=storage_grace,
            sampling=sampling,
            log_artifact_store=log_artifact_store,
            max_concurrent_trials=max_concurrent_trials,
        )
        self._setup(study, config, time.monotonic)

    @classmethod
    def from_config(
        cls,
        study: optuna.Study,
        config: RunConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> StudyRun:
        """The run ``config`` describes (``clock``: monotonic seconds, for tests)."""
        self = cls.__new__(cls)
        self._setup(study, config, clock)
        return self

    def _setup(  # long: the composition root, where every part is made and wired once
        self, study: optuna.Study, config: RunConfig, clock: Callable[[], float]
    ) -> None:
        check_sampling(config.sampling, study.sampler)
        self.run_id = secrets.token_hex(8)
        self.config = config
        self.study = study
        #: Signalled on every change of state, first error and dismissed worker (not on each
        #: finished trial: waking the driver's main thread a thousand times a second would
        #: cost the service its CPU).
        self.changes = Changes()

        self._lock = threading.RLock()  # bookkeeping, held for in-memory work only
        self._sampler_lock = threading.Lock()  # study.ask() and suggestions, one at a time
        self._wakeups = Changes()  # what asks waiting for a result wait on
        self._clock = clock
        self._storage = optuna_adapter.storage_of(study)
        patience = StoragePatience(config.storage_grace)
        # What the sampler sees (its stop(): nothing left to hand out), and what callbacks get.
        self._sampler_study = RunStudy(
            study, self._sampler_stopped, storage_for_asks(self._storage, self.run_id, patience)
        )
        self._callback_study = RunStudy(study, lambda: self.stop(StopReason.STUDY))
        self._finite = optuna_adapter.finite_view(study.sampler)
        self._state = RunState(on_change=self._changed)
        self._leases = LeaseTable(config.heartbeat_grace, config.trial_timeout, clock)
        self._handout = Handout(config.n_trials, config.timeout, clock)
        self._retries = RetryPolicy(study, config.retry_lost_trials, config.n_trials)
        self._resumer = Resumer(
            ResumePolicy(config.resume_lost_trials),
            self._lock,
            self._sampler_lock,
            self._leases,
            self._sampler_study,
            self._storage,
            self.run_id,
            self._wake_asks,
        )
        hooks = RunHooks(
            recorded=self._wake_asks,
            failed=self._fail_run,
            study_stopped=lambda: self.stop(StopReason.STUDY),
            idle=self._check_done_locked,
        )
        self._recorder = Recorder(
            self.run_id,
            study,
            self._sampler_study,
            self._callback_study,
            config,
            self._lock,
            self._leases,
            hooks,
        )
        #: Called with each finished trial, as soon as it is recorded (the progress bar).
        self.listeners = self._recorder.listeners
        self._desk = TrialDesk(
            self._lock,
            self._sampler_lock,
            self._leases,
            self._storage,
            lambda: self._state.interrupting and config.stop_running_trials,
            clock,
            patience,
        )
        self._interrupted = self._desk.interrupted  # trials told to stop by should_prune
        #: Called with (trial number, text) for what objectives print and log, as it comes.
        self.output_listeners = self._desk.output_listeners
        self._dismissed: set[Any] = set()  # workers (Spark partitions) told to stop
        self._closing: str | None = None  # why the run was closed, for trials still being made
        self._ending = False  # the end is being recorded (on the finisher's thread)
        self._started = False
        adopt = self._resumer.adopt if config.resume_lost_trials else None
        self._stamp = RunStamp(study, self.run_id, clock, adopt)
        self._profiles = ProfileWatch(config.profiles, clock)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run is over: nothing to hand out, nothing running, every trial
        recorded and every callback run."""
        return self.changes.wait_for(lambda: self.done, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every trial that has ended so far is recorded in the storage and its
        callbacks have run; returns whether they have within ``timeout`` seconds."""
        return self._recorder.wait_idle(timeout)

    # -----------------------------------------------------------------------------------------
    # Control from the coordinator.

    def start(self) -> None:
        """Begin: stamp this run alive in the study and fail the trials of dead runs.

        ``StudyServer.add_run`` calls it; nothing is written to the study before.
        """
        if self._started:
            return
        self._started = True
        optuna_adapter.clear_stop(self.study)  # as Study.optimize does when it starts
        self._stamp.start()

    def stop(self, reason: StopReason = StopReason.INTERRUPTED) -> None:
        """Hand out no more trials; running trials are told to stop if ``reason`` interrupts."""
        with self._lock:
            self._state.drain(reason)
            self._check_done()

    def interrupt(self, reason: str) -> None:
        """Stop (``INTERRUPTED``), and fail with ``reason`` every trial that ends from now on
        without its worker telling it: lost connections, trials still being made."""
        with self._lock:
            self._closing = self._closing or reason
            self._state.drain(StopReason.INTERRUPTED)
            self._check_done()

    def fail_running(self, reason: str) -> None:
        """Fail every running trial now (for example when the job is cancelled).

        A trial being made at this moment is failed with the same reason when it is ready.
        """
        with self._lock:
            self._closing = self._closing or reason
            for trial_id in self._leases.running_ids():
                self._end_on_driver(trial_id, reason)
            self._check_done()

    def close(self, detail: str) -> None:
        """The workers are gone (``detail`` says how): fail what still runs, end the run."""
        with self._lock:
            reason = self._closing or f"worker lost: {detail}"
            self._closing = reason
            self._state.drain(StopReason.WORKERS_GONE, detail)
            for trial_id in self._leases.running_ids():
                self._end_on_driver(trial_id, reason)
            self._check_done()

    def tick(self) -> None:
        """Periodic checks: lost workers, trial time limits, the run's timeout, the stamp."""
        with self._lock:
            for expiry in self._leases.expired():
                self._end_on_driver(expiry.trial_id, expiry.reason, lost=expiry.lost)
            if self._handout.limit_reached() is StopReason.TIMEOUT:
                self._state.drain(StopReason.TIMEOUT)
            self._profiles.check(self._leases)
            self._check_done()
            done = self.done
        if not done:
            self._stamp.renew()

    # -----------------------------------------------------------------------------------------
    # Requests from workers, validated by the wire schema. Each takes the connection id first.

    def ask(self, conn_id: int, worker: m.WorkerInfo) -> m.AskReply | None:
        """A new trial for the worker; ``None`` tells it to stop.

        The sampler runs under its own lock, not the bookkeeping lock, so that reports,
        pruning questions, tells and heartbeats are answered while it works. When the sampler
        has nothing to hand out until a running trial finishes, the request waits.

        A connection runs one trial at a time: an ask from one that still holds a trial is
        refused (so no connection can burn through ``n_trials`` faster than trials run).
        """
        self.check_free(conn_id)
        while True:
            seen = self._wakeups.count
            answer = self.try_ask(conn_id, worker)
            if isinstance(answer, m.AskReply):
                return answer
            if answer is Verdict.STOP:
                return None
            # No lock held; the bound re-reads the sampler, for trials finished elsewhere.
            self._wakeups.wait_past(seen, 1.0)

    def try_ask(
        self, conn_id: int, worker: m.WorkerInfo, *, dismiss: bool = True
    ) -> m.AskReply | Verdict:
        """One look at :meth:`ask`'s question: a trial, or ``WAIT`` (nothing to hand out until
        something changes: :attr:`wakeups` is signalled then) or ``STOP`` (this run hands out
        nothing more; the worker is told to stop unless ``dismiss`` is false, as in a pool
        where other studies still have work)."""
        self._profiles.saw(worker.profile)
        while True:
            with self._lock:
                if (
                    worker.executor_id is not None
                    and worker.executor_id in self._leases.decommissioned
                ):
                    if dismiss:
                        self._dismiss(worker, conn_id)  # its executor is going away
                    return Verdict.STOP
                # A lost trial resumes, and a trial made for this worker's profile starts,
                # before anything new.
                lease = None
                if not self._state.interrupting:
                    lease = self._leases.take_suspended(conn_id, worker.profile)
                parked = None
                if lease is None and self.config.profiles is not None:
                    record = worker_record(worker, self.run_id)
                    parked = self._leases.take_parked(conn_id, worker.profile, record)
            if lease is not None:
                resumed = self._resume(conn_id, worker, lease)
                return Verdict.STOP if resumed is None else resumed
            if parked is not None:
                started = self._start_parked(conn_id, worker, parked)
                return Verdict.STOP if started is None else started
            if self._full():
                return Verdict.WAIT  # without waiting for the sampler a running trial holds
            with self._sampler_lock:
                availability = self._availability()
                with self._lock:
                    verdict = self._handout.reserve(
                        self._state, availability, self._retries, self._may_resume, self._room()
                    )
                    if verdict is Verdict.STOP:
                        if dismiss:
                            self._dismiss(worker, conn_id)
                        self._check_done()
                        return verdict
                if verdict is Verdict.START:
                    made = self._make_trial(conn_id, worker)
                    if made is not Verdict.WAIT:  # else: parked for another profile
                        return Verdict.STOP if made is None else made
                    continue
            return verdict

    def check_free(self, conn_id: int) -> None:
        """Refuse an ask from a connection that still holds one of this run's trials."""
        with self._lock:
            self._leases.check_free(conn_id)

    def _full(self) -> bool:
        """Whether the hand-out would say WAIT for want of room (no sampler lock needed)."""
        with self._lock:
            running = self._state.reason is None and self._handout.limit_reached() is None
            return running and not self._room()

    def _room(self) -> bool:
        """Whether ``max_concurrent_trials`` and the parked trials allow one more (locked)."""
        cap = self.config.max_concurrent_trials
        if cap is not None and self._leases.n_running + self._handout.n_making >= cap:
            return False
        profiles = self.config.profiles
        return profiles is None or len(self._leases.parked_ids()) < sum(profiles.workers.values())

    def _availability(self) -> Availability:
        if self._finite is None:
            return Availability.READY
        return self._finite.availability(self._sampler_study)

    def _make_trial(self, conn_id: int, worker: m.WorkerInfo) -> m.AskReply | Verdict | None:
        """Make the trial :meth:`ask` reserved, and lease it to the worker; or park it for a
        worker of its profile (``WAIT``: ask again)."""
        try:
            trial, record, profile = _asking.make_trial(
                self._sampler_study, worker, self.run_id, self.config.profiles
            )
        except BaseException as e:
            with self._lock:
                self._handout.unmade()
                if isinstance(e, Exception):
                    self._state.fail(e)
                else:
                    self._state.drain(StopReason.INTERRUPTED)
                self._dismiss(worker, conn_id)
                self._check_done()
            if not isinstance(e, Exception):
                raise
            return None
        trial_id = optuna_adapter.trial_id_of(trial)
        with self._lock:
            self._handout.made()
            self._retries.started(trial_id)
            if record is None:
                self._leases.park(trial_id, trial, profile or "")
            else:
                self._leases.grant(trial_id, trial, conn_id, record, profile)
            if self._closing is not None:
                # The run was closed (Ctrl-C, the job gone) while this trial was made.
                self._end_on_driver(trial_id, self._closing)
                self._dismiss(worker, conn_id)
                self._check_done()
                return None
        if record is None:
            self._wake_asks()  # a worker of its profile may be waiting
            return Verdict.WAIT
        return m.AskReply(trial_id, trial.number, self.study.study_name)

    def _start_parked(self, conn_id: int, worker: m.WorkerInfo, lease: Lease) -> m.AskReply | None:
        """Start the parked trial of ``lease`` (already held by ``conn_id``) on the worker."""
        trial_id = optuna_adapter.trial_id_of(lease.trial)
        try:
            _asking.start_parked(self.study, trial_id, lease.worker)
        except Exception as e:
            with self._lock:
                self._state.fail(e)
                self._end_on_driver(trial_id, f"the driver failed while starting it: {e!r}")
        with self._lock:
            if lease.closed is not None:  # the run was closed meanwhile, or the write failed
                self._dismiss(worker, conn_id)
                self._check_done()
                return None
        return m.AskReply(trial_id, lease.number, self.study.study_name)

    def _resume(self, conn_id: int, worker: m.WorkerInfo, lease: Lease) -> m.AskReply | None:
        """Hand the suspended trial of ``lease`` (already held by ``conn_id``) to the worker."""
        trial_id = optuna_adapter.trial_id_of(lease.trial)
        try:
            self._resumer.record(trial_id, lease, worker_record(worker, self.run_id))
        except Exception as e:
            with self._lock:
                self._state.fail(e)
                self._end_on_driver(trial_id, f"the driver failed while resuming it: {e!r}")
        with self._lock:
            if lease.closed is not None:  # the run was closed meanwhile, or the write failed
                self._dismiss(worker, conn_id)
                self._check_done()
                return None
        return m.AskReply(trial_id, lease.number, self.study.study_name)

    # The calls about a running trial go to the trial desk.

    def call_trial(self, conn_id: int, request: m.TrialRequest) -> Any:
        return self._desk.call_trial(conn_id, request)

    def report(self, conn_id: int, trial_id: int, value: float, step: int) -> None:
        self._desk.report(conn_id, trial_id, value, step)

    def trial_output(self, conn_id: int, trial_id: int, text: str) -> None:
        self._desk.trial_output(conn_id, trial_id, text)

    def should_prune(self, conn_id: int, trial_id: int) -> m.PruneReply:
        return self._desk.should_prune(conn_id, trial_id)

    def heartbeat(self, conn_id: int, trial_ids: list[int]) -> m.HeartbeatReply:
        return self._desk.heartbeat(conn_id, trial_ids)

    def check_writer(self, conn_id: int, trial_id: int) -> bool:
        return self._desk.check_writer(conn_id, trial_id)

    def tell(self, conn_id: int, request: Tell) -> None:
        """Finish a trial with what its objective did: recorded before this returns (outside
        the bookkeeping lock); its callbacks run later, in order."""
        trial_id = request.trial_id
        uncaught = isinstance(request, m.TellFailed) and not request.caught
        with self._lock:
            lease = self._leases.touch(trial_id, conn_id)  # raises unless it runs, for conn_id
            interrupted = trial_id in self._interrupted
            self._interrupted.discard(trial_id)
            outcome = outcome_of(request, self._state.reason if interrupted else None)
            self._leases.close(trial_id, "its worker has told how it ended")
            traceback = None
            if isinstance(request, m.TellFailed):
                traceback = request.error.traceback
                if not request.caught:
                    # Raised by optimize with this traceback as its cause (printed there,
                    # once); as in Study.optimize, no callback runs for it.
                    self._state.fail(rebuild_error(request.error))
        self._recorder.told(lease, outcome, traceback, callbacks=not uncaught)

    def hand_back(self, conn_id: int, trial_id: int, step: int) -> None:
        """The objective saved its checkpoint at ``step`` after its executor began
        decommissioning: the trial resumes on another worker."""
        with self._lock:
            lease = self._leases.touch(trial_id, conn_id)
            executor = lease.worker.get("executor_id")
            why = (
                f"handed back: executor {executor} is decommissioning (checkpoint at step {step})"
            )
            self._end_on_driver(trial_id, why, lost=True)
            self._check_done()

    def decommission(self, executor_id: str) -> None:
        """Executor ``executor_id`` is being decommissioned (the Spark layer watches): its
        trials save at their next checkpoint and resume elsewhere; it gets no new trial."""
        with self._lock:
            if executor_id not in self._leases.decommissioned:
                asked = self._leases.decommission(executor_id)
                _logger.warning(
                    "Executor %s is decommissioning; trials %s save.", executor_id, asked
                )

    def stop_study(self, conn_id: int) -> None:
        """``study.stop()`` called by an objective on a worker."""
        self.stop(StopReason.STUDY)

    def connection_lost(self, conn_id: int) -> None:
        with self._lock:
            lost = self._leases.held_by(conn_id)
            reason = self._closing or "worker lost: its connection to the driver closed"
            for trial_id in lost:
                self._end_on_driver(trial_id, reason, lost=self._closing is None)
            if lost:
                self._check_done()

    # -----------------------------------------------------------------------------------------
    # Ending trials on the driver: called with the lock held, but for the retry decision
    # (_decide_retry, _make_retry), which the recorder calls on its thread.

    def _end_on_driver(self, trial_id: int, reason: str, *, lost: bool = False) -> None:
        """Fail a running trial that its worker will not finish (lost, timed out, stopped).

        A ``lost`` one (its worker gone or handing it back) resumes instead, while it may
        (``resume_lost_trials``); failed, it may be retried (``retry_lost_trials``).
        """
        lease = self._leases.touch(trial_id)
        where = ", ".join(
            f"{k}={lease.worker[k]}"
            for k in ("host", "executor_id", "attempt")
            if k in lease.worker
        )
        full = f"{reason} ({where})" if where else reason
        stopping = self._state.interrupting or self._closing is not None
        if lost and self._resumer.suspends(trial_id, lease, full, stopping):
            return
        self._leases.close(trial_id, reason)
        self._interrupted.discard(trial_id)
        _logger.warning("Trial %d failed: %s.", lease.number, full)
        if lost and self._retries.enabled:
            self._retries.deciding += 1
            self._recorder.lost(lease, full, self._decide_retry, self._make_retry)
        else:
            self._recorder.lost(lease, full, None, None)

    def _decide_retry(self, trial_id: int) -> bool:
        """Whether the lost trial ``trial_id`` runs again (on the recorder's thread)."""
        with self._lock:
            n_started, stopping = self._handout.n_started, self._state.reason
        try:
            return self._retries.allows(trial_id, n_started, stopping)
        except Exception:  # the fail that follows meets the same storage, and reports it
            return False

    def _make_retry(self, lost: FrozenTrial | None, allowed: bool) -> None:
        """Queue the retry of ``lost`` when it was allowed; the decision is over either way."""
        retry_id = None
        if lost is not None and allowed:
            try:
                retry_id = self._retries.create(lost)
            except Exception as e:
                self._fail_run(e)
        with self._lock:
            if retry_id is not None:
                self._retries.add(retry_id)
            self._retries.deciding -= 1
            self._check_done()

    def _fail_run(self, error: BaseException) -> None:
        with self._lock:
            self._state.fail(error)

    def _sampler_stopped(self) -> None:
        """The sampler called ``study.stop()``: it has nothing more to hand out."""
        with self._lock:
            self._state.drain(StopReason.EXHAUSTED)

    # -----------------------------------------------------------------------------------------
    # The run's end.

    def _changed(self) -> None:
        self.changes.notify()
        self._wake_asks()

    def _wake_asks(self) -> None:
        """Something an ask may wait for happened: a trial recorded, a retry decided, the
        run's state changed."""
        self._wakeups.notify()

    def _dismiss(self, worker: m.WorkerInfo, conn_id: int) -> None:
        self._dismissed.add(worker_key(worker, conn_id))
        self.changes.notify()

    def _check_done_locked(self) -> None:
        with self._lock:
            self._check_done()

    def _check_done(self) -> None:
        """End the run once nothing runs, nothing is being made or recorded, and nothing will
        start. The end itself (failing unstarted retries, the final stamp) is written by the
        finisher, after which the run is DONE."""
        if self._state.interrupting:  # a lost or parked trial does not start once it stops
            why = f"worker lost, not resumed: the optimization is stopping ({self._state.reason})"
            for trial_id in self._leases.suspended_ids():
                self._end_on_driver(trial_id, self._closing or why)
            why = f"not started: the optimization is stopping ({self._state.reason})"
            for trial_id in self._leases.parked_ids():
                self._end_on_driver(trial_id, self._closing or why)
        if self._ending or self._leases or self._handout.n_making or self._recorder.busy:
            return
        reached = self._handout.limit_reached()
        if reached is StopReason.N_TRIALS:
            self._state.drain(reached)
        if self._state.phase is not Phase.DRAINING:
            return
        if self._state.reason is StopReason.EXHAUSTED and self._retries.may_come:
            return  # a lost trial's retry runs first
        self._ending = True
        unstarted = self._retries.take_unstarted()
        reason = str(self._state.reason)
        self._recorder.submit(lambda: self._record_end(unstarted, reason))

    def _record_end(self, unstarted: set[int], reason: str) -> None:
        self._retries.fail(unstarted, reason)
        try:
            fail_leftovers(self._sampler_study, self.run_id, f"the run ended ({reason})")
        except Exception:
            _logger.warning("Could not fail the run's leftover trials.", exc_info=True)
        self._stamp.finish()
        with self._lock:
            self._state.finish()
