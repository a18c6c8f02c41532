"""Driver-side state of one distributed ``optimize`` call: the trial service.

Workers ask for trials, run the objective, and tell the outcome. Everything that decides
anything (the sampler, the pruner, ``n_trials``, ``timeout``, callbacks, stopping) happens
here, under one lock per run, on the driver's own ``optuna.Study``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import logging
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_compat as compat
from optuna_spark import _protocol as p
from optuna_spark._service._trial_methods import TRIAL_METHODS

_logger = logging.getLogger(__name__)

Callback = Callable[[optuna.Study, FrozenTrial], None]

#: System attribute keys written on trials (visible in optuna-dashboard and trials_dataframe).
ATTR_WORKER = "optuna_spark:worker"
ATTR_FAIL_REASON = "optuna_spark:fail_reason"
ATTR_TRACEBACK = "optuna_spark:traceback"
ATTR_INTERRUPTED = "optuna_spark:interrupted"
ATTR_RETRY_OF = "optuna_spark:retry_of"
ATTR_RETRY_SKIPPED = "optuna_spark:retry_skipped"
#: Study system attribute prefix: each run's driver stamps ``{"alive": unix time}`` there.
ATTR_DRIVER_PREFIX = "optuna_spark:driver:"

#: Why a run stops handing out trials.
STOP_N_TRIALS = "n_trials reached"
STOP_TIMEOUT = "timeout"
STOP_STUDY = "study.stop() was called"
STOP_EXHAUSTED = "the sampler is exhausted"
STOP_ERROR = "an objective raised an uncaught exception"
STOP_INTERRUPTED = "interrupted"

_INTERRUPTING = {STOP_TIMEOUT, STOP_STUDY, STOP_ERROR, STOP_INTERRUPTED}


@dataclasses.dataclass
class _Running:
    trial: optuna.Trial
    conn_id: int
    worker: dict[str, Any]
    started: float
    last_seen: float


class StudyRun:
    """One distributed optimization of ``study``, served to workers by a ``StorageServer``.

    Args:
        study: The driver's study; its sampler and pruner make every decision.
        n_trials: How many trials this run starts at most (``None``: no limit).
        timeout: Seconds after which no new trial starts (``None``: no limit).
        callbacks: Called on the driver as ``callback(study, frozen_trial)`` after each trial.
        heartbeat_grace: Seconds without any sign of life after which a running trial is
            failed as lost.
        trial_timeout: Seconds a trial may run before it is failed with reason "timeout".
        stop_running_trials: Whether running trials are told to stop (``should_prune`` answers
            ``True``) when the run stops for a timeout, ``study.stop()``, an error or an
            interruption. Without it they run to completion, as in ``Study.optimize``.
        retry_lost_trials: Re-run the parameters of a trial whose worker was lost, once.
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
    ) -> None:
        check_positive("n_trials", n_trials, allow_zero=True)
        check_positive("timeout", timeout)
        check_positive("heartbeat_grace", heartbeat_grace)
        check_positive("trial_timeout", trial_timeout)
        self.run_id = secrets.token_hex(8)
        self.study = study
        self.n_trials = n_trials
        self.timeout = timeout
        self.callbacks = list(callbacks or ())
        self.heartbeat_grace = heartbeat_grace
        self.trial_timeout = trial_timeout
        self.stop_running_trials = stop_running_trials
        self.retry_lost_trials = retry_lost_trials
        self.listeners: list[Callable[[StudyRun, FrozenTrial], None]] = []

        self._lock = threading.RLock()
        self._running: dict[int, _Running] = {}
        self._ended: dict[int, str] = {}  # trial id -> why the driver ended it
        self._interrupted: set[int] = set()
        self._dismissed: set[Any] = set()  # workers (Spark partitions) told to stop
        self._pending_retries: set[int] = set()  # WAITING retries of this run, not started
        self._n_started = 0
        self._n_finished = 0
        self._stop_reason: str | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._done = threading.Event()
        self._t0 = time.monotonic()
        self._stamped = 0.0
        study._stop_flag = False
        self._fail_orphans()
        self._stamp_alive()

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
        return len(self._running)

    @property
    def n_dismissed(self) -> int:
        """How many distinct workers (Spark partitions) have been told to stop."""
        return len(self._dismissed)

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run is over: nothing more to hand out and nothing running."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -----------------------------------------------------------------------------------------
    # Control from the driver.

    def stop(self, reason: str = STOP_INTERRUPTED) -> None:
        """Hand out no more trials; running trials are told to stop if configured so."""
        with self._lock:
            self._set_stop(reason)
            self._check_done()

    def fail_running(self, reason: str) -> None:
        """Mark every running trial FAIL now (for example when the job is cancelled)."""
        with self._lock:
            for trial_id in list(self._running):
                self._end_trial_on_driver(trial_id, reason, retry=False)
            self._check_done()

    def close(self, reason: str) -> None:
        """The workers are gone: fail what still runs and end the run."""
        with self._lock:
            self._set_stop(reason)
            self._closed = True
            for trial_id in list(self._running):
                self._end_trial_on_driver(trial_id, f"worker lost: {reason}", retry=False)
            self._check_done()

    def set_error(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
            self._set_stop(STOP_ERROR)
            self._check_done()

    # -----------------------------------------------------------------------------------------
    # Requests from workers. Each takes the connection id first.

    def ask(self, conn_id: int, worker: dict[str, Any]) -> list[Any] | None:
        """A new trial ``[trial_id, number, study_name]``; ``None`` tells the worker to stop."""
        with self._lock, compat.in_optimize_loop(self.study):
            if not self._may_start_trial():
                self._dismissed.add(worker.get("partition", f"conn-{conn_id}"))
                return None
            asked_at = datetime.datetime.now()
            try:
                trial = self.study.ask()
            except Exception as e:
                # As in Study.optimize, a failing sampler (or storage) stops the study and is
                # raised on the driver. The trial Optuna created before the sampler failed is
                # failed here, or it would stay RUNNING with nobody to end it.
                self._fail_trial_left_by_ask(e, asked_at)
                self.set_error(e)
                return None
            self._note_sampler_stop()
            self._n_started += 1
            self._pending_retries.discard(trial._trial_id)
            now = time.monotonic()
            worker = {**worker, "run_id": self.run_id}
            self.study._storage.set_trial_system_attr(trial._trial_id, ATTR_WORKER, worker)
            self._running[trial._trial_id] = _Running(trial, conn_id, worker, now, now)
            return [trial._trial_id, trial.number, self.study.study_name]

    def trial(self, conn_id: int, trial_id: int, method: str, args: list[Any]) -> Any:
        """Run ``method`` of the driver's ``optuna.Trial`` (suggest, attrs, properties)."""
        fn = TRIAL_METHODS.get(method)
        if fn is None:
            raise ValueError(f"Trial method {method!r} cannot be called remotely.")
        with self._lock, compat.in_optimize_loop(self.study):
            running = self._get_running(trial_id)
            running.last_seen = time.monotonic()
            return fn(running.trial, args)

    def report(self, conn_id: int, trial_id: int, value: float, step: int) -> None:
        """Record an intermediate value (workers send it without waiting for the reply)."""
        with self._lock:
            running = self._get_running(trial_id)
            running.last_seen = time.monotonic()
            running.trial.report(value, step)

    def should_prune(self, conn_id: int, trial_id: int) -> bool:
        with self._lock, compat.in_optimize_loop(self.study):
            running = self._get_running(trial_id)
            running.last_seen = time.monotonic()
            return self._should_prune(trial_id, running)

    def heartbeat(self, conn_id: int, trial_ids: list[int]) -> list[int]:
        """Record signs of life; returns those of ``trial_ids`` the driver no longer runs."""
        now = time.monotonic()
        gone = []
        with self._lock:
            for trial_id in trial_ids:
                running = self._running.get(trial_id)
                if running is None:
                    gone.append(trial_id)
                else:
                    running.last_seen = now
        return gone

    def tell(
        self,
        conn_id: int,
        trial_id: int,
        outcome: str,
        values: Any,
        error: list[str] | None,
        caught: bool,
    ) -> None:
        """Finish a trial: ``outcome`` is ``"values"``, ``"pruned"`` or ``"failed"``."""
        with self._lock, compat.in_optimize_loop(self.study):
            running = self._get_running(trial_id)
            del self._running[trial_id]
            storage = self.study._storage
            state: TrialState | None
            if outcome == "values":
                state = None
            elif outcome == "pruned":
                state, values = TrialState.PRUNED, None
                reason = self._stop_reason if trial_id in self._interrupted else None
                if reason is not None:
                    storage.set_trial_system_attr(trial_id, ATTR_INTERRUPTED, reason)
            elif outcome == "failed":
                state, values = TrialState.FAIL, None
                assert error is not None
                storage.set_trial_system_attr(
                    trial_id, ATTR_FAIL_REASON, f"{error[0]}: {error[1]}"
                )
                storage.set_trial_system_attr(trial_id, ATTR_TRACEBACK, error[2])
            else:
                raise ValueError(f"Unknown trial outcome {outcome!r}.")
            self._interrupted.discard(trial_id)
            try:
                frozen = compat.tell(self.study, running.trial, values, state, error)
            except Exception as e:
                self._n_finished += 1
                with contextlib.suppress(Exception):
                    storage.set_trial_state_values(trial_id, TrialState.FAIL)
                self.set_error(e)
                raise
            self._note_sampler_stop()
            self._n_finished += 1
            if error is not None and not caught:
                self.set_error(p.rebuild_error(error))
            else:
                self._after_trial(frozen)
            self._check_done()

    def stop_study(self, conn_id: int) -> None:
        """``study.stop()`` called by an objective on a worker."""
        self.stop(STOP_STUDY)

    def connection_lost(self, conn_id: int) -> None:
        with self._lock:
            lost = [tid for tid, r in self._running.items() if r.conn_id == conn_id]
            for trial_id in lost:
                self._end_trial_on_driver(
                    trial_id, "worker lost: its connection to the driver closed", retry=True
                )
            if lost:
                self._check_done()

    def tick(self) -> None:
        """Periodic checks: lost workers, trial time limits, the run's timeout."""
        now = time.monotonic()
        with self._lock:
            for trial_id, r in list(self._running.items()):
                if now - r.last_seen > self.heartbeat_grace:
                    self._end_trial_on_driver(
                        trial_id,
                        f"worker lost: no heartbeat for {now - r.last_seen:.1f} s "
                        f"(grace {self.heartbeat_grace:g} s)",
                        retry=True,
                    )
                elif self.trial_timeout is not None and now - r.started > self.trial_timeout:
                    self._end_trial_on_driver(
                        trial_id,
                        f"timeout: the trial ran longer than {self.trial_timeout:g} s",
                        retry=False,
                    )
            if self.timeout is not None and now - self._t0 >= self.timeout:
                self._set_stop(STOP_TIMEOUT)
            self._check_done()
        if now - self._stamped > self.heartbeat_grace / 3:
            self._stamp_alive()

    # -----------------------------------------------------------------------------------------
    # A driver that died leaves RUNNING trials behind; the next run fails them first.

    def _stamp_alive(self) -> None:
        self._stamped = time.monotonic()
        self.study._storage.set_study_system_attr(
            self.study._study_id,
            ATTR_DRIVER_PREFIX + self.run_id,
            {"alive": time.time(), "grace": self.heartbeat_grace, "done": self._done.is_set()},
        )

    def _fail_orphans(self) -> None:
        storage = self.study._storage
        study_attrs = storage.get_study_system_attrs(self.study._study_id)
        running = storage.get_all_trials(
            self.study._study_id, deepcopy=False, states=(TrialState.RUNNING,)
        )
        now = time.time()
        for t in running:
            run_id = t.system_attrs.get(ATTR_WORKER, {}).get("run_id")
            if run_id is None:
                continue  # not ours: some other process runs it
            stamp = study_attrs.get(ATTR_DRIVER_PREFIX + run_id, {})
            silent = now - float(stamp.get("alive", 0.0))
            if stamp.get("done") or silent > float(stamp.get("grace", self.heartbeat_grace)):
                reason = (
                    f"driver lost: the optimization that ran this trial stopped "
                    f"{silent:.0f} s ago without finishing it"
                )
                storage.set_trial_system_attr(t._trial_id, ATTR_FAIL_REASON, reason)
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                _logger.warning("Trial %d failed: %s.", t.number, reason)

    # -----------------------------------------------------------------------------------------
    # Internals; all called with the lock held.

    def _get_running(self, trial_id: int) -> _Running:
        running = self._running.get(trial_id)
        if running is None:
            why = self._ended.get(trial_id, "it is not running in this optimization")
            raise UpdateFinishedTrialError(
                f"Trial {trial_id} is no longer running on the driver: {why}."
            )
        return running

    def _should_prune(self, trial_id: int, running: _Running) -> bool:
        if self._stop_reason in _INTERRUPTING and self.stop_running_trials:
            self._interrupted.add(trial_id)
            return True
        return running.trial.should_prune()

    def _may_start_trial(self) -> bool:
        if self._closed or self._error is not None:
            return False
        if self._stop_reason is None:
            if self.study._stop_flag:
                self._set_stop(STOP_STUDY)
            elif self.n_trials is not None and self._n_started >= self.n_trials:
                self._set_stop(STOP_N_TRIALS)
            elif self.timeout is not None and self.elapsed >= self.timeout:
                self._set_stop(STOP_TIMEOUT)
            elif compat.all_points_started(self.study):
                self._set_stop(STOP_EXHAUSTED)
        if self._stop_reason is None:
            return True
        # A lost trial's retry still runs when only the sampler had nothing left to give.
        return self._stop_reason == STOP_EXHAUSTED and bool(self._pending_retries)

    def _note_sampler_stop(self) -> None:
        # ``study.stop()`` from inside ask/tell is the sampler's (GridSampler, LOCOSampler,
        # BruteForceSampler): nothing is left to hand out, but running trials must finish.
        # The flag is consumed, so that only a later stop (a callback's) interrupts them.
        if self.study._stop_flag:
            self.study._stop_flag = False
            self._set_stop(STOP_EXHAUSTED)

    def _set_stop(self, reason: str) -> None:
        # The first reason wins, except that a reason to interrupt the running trials (an
        # error, a timeout, a stop) overrides one that only ends the hand-out.
        current = self._stop_reason
        if current is None or (reason in _INTERRUPTING and current not in _INTERRUPTING):
            self._stop_reason = reason
            _logger.debug("Run %s stops handing out trials: %s.", self.run_id, reason)

    def _check_done(self) -> None:
        if self._running:
            return
        if self.study._stop_flag:
            self._set_stop(STOP_STUDY)
        if self.n_trials is not None and self._n_started >= self.n_trials:
            self._set_stop(STOP_N_TRIALS)
        waiting_retry = bool(self._pending_retries) and self._stop_reason == STOP_EXHAUSTED
        over = (
            self._closed
            or self._error is not None
            or (self._stop_reason is not None and not waiting_retry)
        )
        if over and not self._done.is_set():
            self._fail_unstarted_retries()
            self._done.set()
            self._stamp_alive()

    def _fail_unstarted_retries(self) -> None:
        # A retry the run ended before starting would otherwise wait for the next optimize.
        for trial_id in self._pending_retries:
            reason = f"retry not run: the optimization ended ({self._stop_reason})"
            with contextlib.suppress(Exception):
                self.study._storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
                self.study._storage.set_trial_state_values(trial_id, TrialState.FAIL)
        self._pending_retries.clear()

    def _after_trial(self, frozen: FrozenTrial) -> None:
        try:
            for callback in self.callbacks:
                callback(self.study, copy.deepcopy(frozen))
        except Exception as e:
            self.set_error(e)
        if self.study._stop_flag:
            self._set_stop(STOP_STUDY)
        for listener in self.listeners:
            try:
                listener(self, frozen)
            except Exception:
                _logger.exception("A progress listener failed.")

    def _end_trial_on_driver(self, trial_id: int, reason: str, *, retry: bool) -> None:
        running = self._running.pop(trial_id)
        self._interrupted.discard(trial_id)
        self._ended[trial_id] = reason
        storage = self.study._storage
        worker = running.worker
        where = ", ".join(
            f"{k}={worker[k]}" for k in ("host", "executor_id", "attempt") if k in worker
        )
        full = f"{reason} ({where})" if where else reason
        _logger.warning("Trial %d failed: %s.", running.trial.number, full)
        with compat.in_optimize_loop(self.study):
            try:
                retrying = retry and self.retry_lost_trials and self._may_retry(trial_id)
                storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, full)
                frozen = compat.tell(self.study, running.trial, None, TrialState.FAIL, None)
            except Exception as e:
                self._n_finished += 1
                self.set_error(e)
                return
            self._note_sampler_stop()
            self._n_finished += 1
            if retrying:
                self._enqueue_retry(frozen)
            self._after_trial(frozen)

    def _may_retry(self, trial_id: int) -> bool:
        """Whether a lost trial may run again; the reason why not is recorded on it."""
        storage = self.study._storage
        why_not = None
        if ATTR_RETRY_OF in storage.get_trial_system_attrs(trial_id):
            why_not = "it was itself a retry"
        elif self._closed or self._error is not None or self._stop_reason in _INTERRUPTING:
            why_not = f"the optimization is stopping ({self._stop_reason})"
        elif self.n_trials is not None and self._n_started + len(self._pending_retries) >= (
            self.n_trials
        ):
            why_not = f"all n_trials={self.n_trials} trials have started"
        if why_not is not None:
            storage.set_trial_system_attr(trial_id, ATTR_RETRY_SKIPPED, why_not)
        return why_not is None

    def _enqueue_retry(self, frozen: FrozenTrial) -> None:
        """Run a lost trial's parameters once more (counted in ``n_trials``)."""
        # The sampler's own records (GridSampler's grid_id, LOCOSampler's arm) go along, so
        # that the retry re-runs the same point instead of taking a new one.
        system_attrs = {
            k: v
            for k, v in frozen.system_attrs.items()
            if not k.startswith("optuna_spark:") and not k.startswith("constraints")
        }
        system_attrs[ATTR_RETRY_OF] = frozen.number
        retry = optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=frozen.params,
            distributions=frozen.distributions,
            user_attrs=frozen.user_attrs,
            system_attrs=system_attrs,
        )
        self._pending_retries.add(
            self.study._storage.create_new_trial(self.study._study_id, template_trial=retry)
        )

    def _fail_trial_left_by_ask(self, error: Exception, asked_at: datetime.datetime) -> None:
        storage = self.study._storage
        with contextlib.suppress(Exception):
            running = storage.get_all_trials(
                self.study._study_id, deepcopy=False, states=(TrialState.RUNNING,)
            )
            mine = set(self._running)
            for t in reversed(running):  # the newest RUNNING trial nobody runs yet
                if (
                    t._trial_id not in mine
                    and ATTR_WORKER not in t.system_attrs
                    and t.datetime_start is not None
                    and t.datetime_start >= asked_at
                ):
                    reason = f"the sampler failed while starting it: {error!r}"
                    storage.set_trial_system_attr(t._trial_id, ATTR_FAIL_REASON, reason)
                    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                    break


def check_positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    """Raise a clear error unless ``value`` is ``None`` or a positive number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, but got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be {'non-negative' if allow_zero else 'positive'}, "
            f"but got {name}={value!r}."
        )


def trial_values_out(value_or_values: Any) -> Any:
    """What a worker sends for an objective's return value (numbers as floats)."""
    if value_or_values is None:
        return None
    if isinstance(value_or_values, Sequence) and not isinstance(value_or_values, str):
        return [_number_or_repr(v) for v in value_or_values]
    return _number_or_repr(value_or_values)


def _number_or_repr(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return repr(v)
