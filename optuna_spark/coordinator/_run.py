"""``StudyRun``: one distributed ``optimize`` of a study, served to workers.

Workers ask for trials, run the objective and tell the outcome. Everything that decides
anything (the sampler, the pruner, ``n_trials``, ``timeout``, callbacks, stopping) happens
here, on the coordinator's own ``optuna.Study``. :class:`RunCore` keeps the run's state and
bookkeeping; this module answers the workers' requests.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._waiting import never_wait
from optuna_spark.coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark.coordinator._attrs import ATTR_PRUNED_AT
from optuna_spark.coordinator._attrs import ATTR_WORKER
from optuna_spark.coordinator._leases import worker_record
from optuna_spark.coordinator._outcome import Tell
from optuna_spark.coordinator._outcome import outcome_of
from optuna_spark.coordinator._output import MAX_OUTPUT_CHARS
from optuna_spark.coordinator._output import upload_log
from optuna_spark.coordinator._recovery import fail_trial_left_by_ask
from optuna_spark.coordinator._run_core import RunCore
from optuna_spark.coordinator._state import StopReason
from optuna_spark.coordinator._trial_methods import SAMPLING
from optuna_spark.coordinator._trial_methods import TRIAL_METHODS
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._errors import rebuild_error
from optuna_spark.worker._loop import WorkerSpec

_logger = logging.getLogger(__name__)


class StudyRun(RunCore):
    """One distributed optimization of ``study``, served to workers by a ``StudyServer``.

    Args:
        study: The coordinator's study; its sampler and pruner make every decision.
        n_trials: How many trials this run starts at most (``None``: no limit).
        timeout: Seconds after which no new trial starts (``None``: no limit).
        callbacks: Called as ``callback(study, frozen_trial)`` after each trial.
        heartbeat_grace: Seconds without any sign of life after which a running trial is
            failed as lost.
        trial_timeout: Seconds a trial may run before it is failed with reason "timeout".
        stop_running_trials: Whether running trials are told to stop (``should_prune`` answers
            ``True``) when the run stops for a timeout, ``study.stop()``, an error or an
            interruption. Without it they run to completion, as in ``Study.optimize``.
        retry_lost_trials: Re-run the parameters of a trial whose worker was lost, once.
        log_artifact_store: An Optuna artifact store: each trial's whole output (what its
            objective printed and logged, up to 1 MiB) becomes its artifact
            ``trial-<number>.log``. The last 64 KiB are kept on the trial either way.
        sampling: Where parameters are sampled. ``"driver"``: by ``study.sampler``, here,
            one suggestion at a time. ``"workers"``: each worker samples with its own copy of
            it (see :meth:`worker_spec`); the driver still creates and numbers the trials,
            prunes, runs callbacks and keeps ``n_trials``. Samplers that hand out each point
            once (``GridSampler``, ``BruteForceSampler``, ``LOCOSampler``) are refused there.

    Example:

        Workers outside Spark: threads here, or processes anywhere that reach the server.

        .. testcode::

            import threading

            import optuna
            from optuna_spark.remote import StudyRun, StudyServer, run_worker

            storage = optuna.storages.InMemoryStorage()
            study = optuna.create_study(storage=storage)
            run = StudyRun(study, n_trials=8, sampling="workers")
            with StudyServer(storage) as server:
                server.add_run(run)
                spec = run.worker_spec(server.endpoint)
                objective = lambda trial: trial.suggest_float("x", -1, 1) ** 2
                workers = [
                    threading.Thread(target=run_worker, args=(spec, objective))
                    for _ in range(2)
                ]
                for w in workers:
                    w.start()
                run.wait()
                for w in workers:
                    w.join()
            assert len(study.trials) == 8
    """

    def worker_spec(
        self,
        endpoint: Endpoint,
        *,
        heartbeat_interval: float = 5.0,
        exit_if_stuck_after: float | None = None,
        gc_after_trial: bool = False,
    ) -> WorkerSpec:
        """What workers of this run are started with (see :func:`run_worker`).

        With ``sampling="workers"`` it carries the study's sampler and pruner, which each
        worker copies; it must then be shipped as Python objects (pickled, as Spark does).
        """
        local = self.sampling == "workers"
        return WorkerSpec(
            endpoint,
            self.run_id,
            heartbeat_interval=heartbeat_interval,
            exit_if_stuck_after=exit_if_stuck_after,
            sampler=self.study.sampler if local else None,
            pruner=self.study.pruner if local else None,
            gc_after_trial=gc_after_trial,
        )

    # -----------------------------------------------------------------------------------------
    # Requests from workers, validated by the wire schema. Each takes the connection id first.

    def ask(self, conn_id: int, worker: m.WorkerInfo) -> m.AskReply | None:
        """A new trial for the worker; ``None`` tells it to stop.

        The sampler runs under its own lock, not the bookkeeping lock, so that reports,
        pruning questions, tells and heartbeats are answered while it works. Asks are
        serialized among themselves (one seeded sampler, each grid point handed out once).
        """
        while True:
            with self._sampler_lock, optuna_adapter.in_optimize_loop(self.study):
                with self._lock:
                    finished = self._n_finished
                    verdict = self._reserve()
                    if verdict is False:
                        self._dismiss(worker, conn_id)
                        return None
                if verdict:
                    return self._ask_reserved(conn_id, worker)
            # The sampler decides what comes next from a running trial's result: wait for it.
            self._await_finished(finished)

    def _ask_reserved(self, conn_id: int, worker: m.WorkerInfo) -> m.AskReply | None:
        """Make the trial reserved by :meth:`_reserve` and lease it to the worker."""
        asked_at = datetime.datetime.now()
        trial: optuna.Trial | None = None
        try:
            with never_wait():  # the running trials need the sampler lock held here
                trial = self.study.ask()
            record = worker_record(worker, self.run_id)
            trial_id = optuna_adapter.trial_id_of(trial)
            self._storage.set_trial_system_attr(trial_id, ATTR_WORKER, record)
        except BaseException as e:
            self._ask_failed(e, trial, asked_at, worker, conn_id)
            if not isinstance(e, Exception):
                raise
            return None
        with self._lock:
            self._asking -= 1
            self._note_sampler_stop()
            self._retries.started(trial_id)
            self._leases.grant(trial_id, trial, conn_id, record)
            if self._closing is not None:
                # The run was closed (Ctrl-C, the job gone) while this trial was made.
                self._end_on_driver(trial_id, self._closing, retry=False)
                self._dismiss(worker, conn_id)
                self._check_done()
                return None
        return m.AskReply(trial_id, trial.number, self.study.study_name)

    def _ask_failed(
        self,
        error: BaseException,
        trial: optuna.Trial | None,
        asked_at: datetime.datetime,
        worker: m.WorkerInfo,
        conn_id: int,
    ) -> None:
        """As in Study.optimize, a failing sampler (or storage) stops the study and is raised
        on the driver; the trial made for the ask is failed, or it would stay RUNNING."""
        with self._lock:
            self._asking -= 1
            if trial is None:
                self._n_started -= 1  # Optuna's own trial, if it made one, is found and failed
                fail_trial_left_by_ask(self.study, error, asked_at, set(self._leases.ids()))
            else:
                with contextlib.suppress(Exception):
                    trial_id = optuna_adapter.trial_id_of(trial)
                    reason = f"the driver failed while starting it: {error!r}"
                    self._storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
                    self._storage.set_trial_state_values(trial_id, TrialState.FAIL)
            if isinstance(error, Exception):
                self._state.fail(error)
            else:
                self._state.drain(StopReason.INTERRUPTED)
            self._dismiss(worker, conn_id)
            self._check_done()

    def _reserve(self) -> bool | None:
        """Whether a trial may start now (``None``: not until a running trial finishes); if
        so, count it in ``n_trials`` already (so that ``n_trials`` stays exact and the run is
        not over while the trial is being made)."""
        if not self._may_start_trial():
            return False
        if self._state.reason is None and optuna_adapter.all_points_started(self.study):
            self._state.drain(StopReason.EXHAUSTED)
            if not self._waiting_for_retry():
                return False
        if self._state.reason is None and optuna_adapter.sampler_must_wait(self.study):
            return None
        self._n_started += 1
        self._asking += 1
        return True

    def call_trial(self, conn_id: int, request: m.TrialRequest) -> Any:
        """Run a method of the driver's ``optuna.Trial`` (suggest, attributes, reads).

        Suggestions run under the sampler's lock; nothing here holds the bookkeeping lock.
        """
        method = TRIAL_METHODS[type(request)]
        with self._lock:
            lease = self._leases.touch(request.trial_id)
            lease.busy += 1  # alive while it waits for the sampler (its heartbeats wait too)
        samples = type(request) in SAMPLING
        sampling = self._sampler_lock if samples else contextlib.nullcontext()
        try:
            with sampling, optuna_adapter.in_optimize_loop(self.study):
                return method(lease.trial, request)
        finally:
            with self._lock:
                lease.busy -= 1
                lease.last_seen = time.monotonic()

    def report(self, conn_id: int, trial_id: int, value: float, step: int) -> None:
        """Record an intermediate value (workers send it without waiting for the reply)."""
        with self._lock:
            self._leases.touch(trial_id).trial.report(value, step)

    def trial_output(self, conn_id: int, trial_id: int, text: str) -> None:
        """What a trial's objective printed or logged; ignored once the trial has ended, and
        beyond :data:`MAX_OUTPUT_CHARS` (workers send no more; a client that does is cut)."""
        with self._lock:
            lease = self._leases.find(trial_id)
            if lease is None or lease.output_chars >= MAX_OUTPUT_CHARS:
                return
            text = text[: MAX_OUTPUT_CHARS - lease.output_chars]
            lease.output.append(text)
            lease.output_chars += len(text)
            number = lease.number
        for listener in self.output_listeners:
            try:
                listener(number, text)
            except Exception:
                _logger.exception("An output listener failed.")

    def should_prune(self, conn_id: int, trial_id: int) -> bool:
        # Under the bookkeeping lock (the pruner is quick next to a sampler, and pruning
        # questions in parallel only contend for the storage), never behind the sampler.
        with self._lock, optuna_adapter.in_optimize_loop(self.study):
            trial = self._leases.touch(trial_id).trial
            if self._state.interrupting and self.stop_running_trials:
                self._interrupted.add(trial_id)
                return True
            prune = trial.should_prune()
            if prune:
                now = datetime.datetime.now().isoformat()
                self._storage.set_trial_system_attr(trial_id, ATTR_PRUNED_AT, now)
            return prune

    def heartbeat(self, conn_id: int, trial_ids: list[int]) -> list[int]:
        """Record signs of life; returns those of ``trial_ids`` the driver no longer runs."""
        with self._lock:
            return self._leases.heartbeat(trial_ids)

    def tell(self, conn_id: int, request: Tell) -> None:
        """Finish a trial with what its objective did."""
        self._upload_log(request.trial_id)
        with self._lock, optuna_adapter.in_optimize_loop(self.study):
            trial_id = request.trial_id
            self._leases.touch(trial_id)  # raises when it is not running
            lease = self._leases.release(trial_id)
            interrupted = trial_id in self._interrupted
            self._interrupted.discard(trial_id)
            outcome = outcome_of(request, self._state.reason if interrupted else None)
            for key, value in outcome.attrs.items():
                self._storage.set_trial_system_attr(trial_id, key, value)
            frozen = self._finish(lease, outcome.values, outcome.state, outcome.failure)
            if isinstance(request, m.TellFailed) and request.caught:
                # An uncaught error is raised by optimize with this traceback as its cause:
                # it is printed there, once.
                _logger.warning(
                    "Trial %d failed with the worker's traceback:\n%s",
                    lease.number,
                    request.error.traceback,
                )
            if isinstance(request, m.TellFailed) and not request.caught:
                self._state.fail(rebuild_error(request.error))
            else:
                self._after_trial(frozen)
            self._check_done()

    def _upload_log(self, trial_id: int) -> None:
        """The trial's whole output as an artifact (outside the lock: stores may be slow)."""
        if self.log_artifact_store is None:
            return
        with self._lock:
            lease = self._leases.find(trial_id)
            text = "" if lease is None else "".join(lease.output)
            number = -1 if lease is None else lease.number
        if text:
            upload_log(self.log_artifact_store, self._storage, trial_id, number, text)

    def stop_study(self, conn_id: int) -> None:
        """``study.stop()`` called by an objective on a worker."""
        self.stop(StopReason.STUDY)

    def connection_lost(self, conn_id: int) -> None:
        with self._lock:
            lost = self._leases.held_by(conn_id)
            for trial_id in lost:
                self._end_on_driver(
                    trial_id, "worker lost: its connection to the driver closed", retry=True
                )
            if lost:
                self._check_done()
