"""The trial desk: what a worker asks of the run about the trial it runs.

Suggestions and other methods of the driver's ``optuna.Trial``, intermediate values, the
objective's output, pruning questions and heartbeats. Each finds the trial's lease under the
run's bookkeeping lock and does its work outside it: suggestions under the sampler lock,
the pruner and Optuna's writes under no lock of the run's.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any

from optuna.storages import BaseStorage
from optuna.storages import InMemoryStorage

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator import _asking
from optuna_spark._coordinator._finisher import Stage
from optuna_spark._coordinator._leases import Lease
from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark._coordinator._leases import write_reports
from optuna_spark._coordinator._patience import StoragePatience
from optuna_spark._coordinator._patience import is_transient
from optuna_spark.wire import messages as m

_logger = logging.getLogger(__name__)


class TrialDesk:
    """Answers a run's workers about their running trials.

    Args:
        lock: The run's bookkeeping lock, which guards ``leases``.
        sampler_lock: The run's sampler lock (suggestions take it).
        leases: The run's lease table.
        storage: The study's storage.
        stopping: Whether running trials are to stop now (called under ``lock``).
        clock: Monotonic seconds.
        patience: How the run rides out storage outages.
    """

    def __init__(
        self,
        lock: threading.RLock,
        sampler_lock: threading.Lock,
        leases: LeaseTable,
        storage: BaseStorage,
        stopping: Callable[[], bool],
        clock: Callable[[], float],
        patience: StoragePatience | None = None,
    ) -> None:
        self._lock = lock
        self._sampler_lock = sampler_lock
        self._leases = leases
        self._storage = storage
        self._stopping = stopping
        self._clock = clock
        self._patience = patience or StoragePatience(0)
        #: Trials that ``should_prune`` told to stop because the run is stopping (guarded by
        #: the run's lock): their pruned state records why.
        self.interrupted: set[int] = set()
        #: Called with (trial number, text) for what objectives print and log, as it comes.
        self.output_listeners: list[Callable[[int, str], None]] = []
        #: Writes reports in the order they came, on a thread of its own; Optuna's in-memory
        #: storage, which cannot be slow, is written at once.
        self._writes = (
            None
            if type(storage) is InMemoryStorage
            else Stage("optuna-spark-reports", lambda: None)
        )

    def call_trial(self, conn_id: int, request: m.TrialRequest) -> Any:
        """Run a method of the driver's ``optuna.Trial`` (suggest, attributes, reads)."""
        with self._lock:
            lease = self._leases.touch(request.trial_id, conn_id)
            lease.busy += 1  # alive while it waits for the sampler (its heartbeats wait too)
        sampling = self._sampler_lock if _asking.samples(request) else contextlib.nullcontext()
        try:
            with sampling:
                return _asking.call_trial(lease.trial, request)
        finally:
            with self._lock:
                lease.busy -= 1
                lease.last_seen = self._clock()

    def report(self, conn_id: int, trial_id: int, value: float, step: int) -> None:
        """Record an intermediate value (workers send it without waiting for the reply).

        It joins the trial's in-memory view at once (what ``should_prune`` gives the pruner)
        and is written to the storage on the desk's writer thread, in order: a slow or failing
        storage never holds up the worker. While the storage fails, the value waits on the
        lease (written with the next report, or before the trial's end is). A resumed trial
        that reports a step its earlier run reported is answered without a word and the
        first value is kept, so that the pruner sees one curve.
        """
        with self._lock:
            lease = self._leases.touch(trial_id, conn_id)
            steps = lease.steps
        if lease.resumes:
            if steps is None:
                steps = set(self._storage.get_trial(trial_id).intermediate_values)
                with self._lock:
                    lease.steps = steps
            if step in steps:
                return
            steps.add(step)
        if optuna_adapter.remember_report(lease.trial, value, step):
            lease.pending.append((step, value))
            if self._writes is None:
                self._write_reports(lease)
            else:
                self._writes.submit(lambda: self._write_reports(lease))

    def _write_reports(self, lease: Lease) -> None:
        """Write the lease's waiting reports (on the writer's thread), trying the storage
        once: while it fails they wait for the next report, or the trial's end."""
        try:
            with self._patience.once():
                write_reports(lease)
        except Exception as e:
            if is_transient(e):
                return
            with lease.write_lock:  # the storage refuses it for good: the trial goes on
                dropped = lease.pending.pop(0) if lease.pending else None
            if dropped is not None:
                _logger.warning(
                    "Trial %d's report of step %d could not be written: %r",
                    lease.number,
                    dropped[0],
                    e,
                )

    def trial_output(self, conn_id: int, trial_id: int, text: str) -> None:
        """What a trial's objective printed or logged; ignored once the trial has ended (or
        when it comes from a connection that does not hold the trial)."""
        with self._lock:
            lease = self._leases.find(trial_id)
            if lease is None or lease.conn_id != conn_id:
                return
            text = lease.keep_output(text)
            number = lease.number
        if text:
            for listener in self.output_listeners:
                try:
                    listener(number, text)
                except Exception:
                    _logger.exception("An output listener failed.")

    def should_prune(self, conn_id: int, trial_id: int) -> m.PruneReply:
        """The pruner's answer, or ``True`` when the run is stopping its running trials; and
        whether the trial is to save and hand back (its executor is being decommissioned).

        The pruner sees the trial's reports as the run received them, written or not (they
        are written off the worker's path); while the storage fails (the pruner cannot read
        the study) the answer is not to prune: the trial goes on, as it would without one.
        """
        with self._lock:
            lease = self._leases.touch(trial_id, conn_id)
            if self._stopping():
                self.interrupted.add(trial_id)
                return m.PruneReply(True, lease.save_requested)
            lease.busy += 1  # alive while the pruner reads a slow database (its heartbeats wait)
        prune = False
        try:
            with self._patience.once():
                prune = _asking.should_prune(lease.trial)
        except Exception as e:
            if not is_transient(e):
                raise
        finally:
            with self._lock:
                lease.busy -= 1
                lease.last_seen = self._clock()
        if prune:
            lease.pruned_at = datetime.datetime.now().isoformat()
        return m.PruneReply(prune, lease.save_requested)

    def check_writer(self, conn_id: int, trial_id: int) -> bool:
        """Whether this run runs ``trial_id``, for a storage write from ``conn_id``; raises if
        the run does and ``conn_id`` is not the connection that holds it (a worker writes
        only to the trial it was handed, nobody to a trial waiting to resume, and nobody else
        to one whose end is being written)."""
        with self._lock:
            lease = self._leases.lease_of(trial_id)
            if lease is not None and lease.conn_id != conn_id:
                raise PermissionError(
                    f"Trial {lease.number} is being run by a worker of an optimization on "
                    "this server: only the connection that holds it may write to it."
                )
        return lease is not None

    def heartbeat(self, conn_id: int, trial_ids: list[int]) -> m.HeartbeatReply:
        """Record signs of life; returns those of ``trial_ids`` the run no longer runs (for
        this connection)."""
        with self._lock:
            return self._leases.heartbeat(conn_id, trial_ids)
