"""The lease table: which connection runs which trial, its signs of life and its deadlines.

A *lease* is a running trial held by one worker connection. It is granted when the trial is
handed out, *suspended* when its worker is lost and the trial is to resume on another worker
(it then waits, held by no connection, until the next ask takes it over), and *closed* when
its end is known (the worker told it, or the run ended it: the
worker was lost, the trial ran out of time, the run was interrupted); a closed lease stays in
the table until the storage has accepted the trial's end, so that the run is not over, and no
other call can act on the trial, while its outcome is still being written. A trial made for
another resource profile than its asking worker's is *parked*: held by no connection, it waits
for a worker of its profile, which starts it as new.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from collections.abc import Hashable
from typing import Any

import msgspec
import optuna
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.wire import messages as m

#: The most of a trial's output the driver keeps (a little over what a worker ships, which
#: ends with a line saying what it left out).
MAX_OUTPUT_CHARS = m.MAX_TRIAL_OUTPUT + 4096


@dataclasses.dataclass
class Lease:
    """A running trial, held by the worker on connection ``conn_id``."""

    trial: optuna.Trial
    conn_id: int | None  # None while suspended: waiting for a worker to resume it
    worker: dict[str, Any]
    started: float
    last_seen: float
    #: Its resumes so far (``optuna_spark:resumes``), and the connections that held it
    #: before (a call of theirs learns that the trial moved on).
    resumes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    former_conns: set[int] = dataclasses.field(default_factory=set)
    #: Steps already reported, read once a resumed run reports (a re-reported step is
    #: accepted without a word: the pruner sees one curve).
    steps: set[int] | None = None
    #: Why its last worker was lost, while suspended.
    lost: dict[str, Any] | None = None
    #: Its executor is being decommissioned: the objective's next checkpoint hands it back.
    save_requested: bool = False
    #: Reports not written yet (they are written off the worker's path, and wait while the
    #: storage fails): (step, value), oldest first; ``write_lock`` is held to write them.
    pending: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    write_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: When the pruner decided to prune it (ISO 8601), written with its end.
    pruned_at: str | None = None
    busy: int = 0  # calls of its worker in progress (waiting for the sampler, say)
    closed: str | None = None  # why it ended, once it has (its outcome is being recorded)
    output: list[str] = dataclasses.field(default_factory=list)  # what the objective printed
    output_chars: int = 0  # their total length
    #: The resource profile it runs under (``None``: any worker's).
    profile: str | None = None
    #: Made, not started yet: it waits for a worker of its profile.
    parked: bool = False

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def suspended(self) -> bool:
        return self.conn_id is None and self.closed is None and not self.parked

    @property
    def waiting(self) -> bool:
        """Held by no connection: suspended or parked."""
        return self.conn_id is None and self.closed is None

    def keep_output(self, text: str) -> str:
        """Keep what the objective printed, up to :data:`MAX_OUTPUT_CHARS` in all (workers
        send no more; a client that does is cut); returns the part kept."""
        text = text[: max(0, MAX_OUTPUT_CHARS - self.output_chars)]
        if text:
            self.output.append(text)
            self.output_chars += len(text)
        return text


@dataclasses.dataclass(frozen=True)
class Expiry:
    """A lease whose holder went silent or whose trial ran out of time."""

    trial_id: int
    reason: str
    lost: bool  # the worker is gone (a retry may help), rather than the trial too slow


class LeaseTable:
    """Running trials by id. Not thread-safe: the run's lock guards it.

    Args:
        heartbeat_grace: Seconds without a sign of life after which a lease expires as lost.
        trial_timeout: Seconds after which a trial's lease expires as timed out.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        heartbeat_grace: float,
        trial_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.heartbeat_grace = heartbeat_grace
        self.trial_timeout = trial_timeout
        self._clock = clock
        self._leases: dict[int, Lease] = {}
        self._ended: dict[int, tuple[int, str]] = {}  # trial id -> (number, why it ended)
        #: Executors being decommissioned: their workers get no new trial.
        self.decommissioned: set[str] = set()
        #: Suspended trials, oldest loss first (an ask takes one without scanning them all).
        self._suspended: list[int] = []
        #: Parked trials, oldest first.
        self._parked: list[int] = []

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._leases

    def running_ids(self) -> list[int]:
        """The trials whose end is not known yet."""
        return [tid for tid, lease in self._leases.items() if lease.closed is None]

    @property
    def n_running(self) -> int:
        return sum(1 for lease in self._leases.values() if lease.closed is None)

    def grant(
        self,
        trial_id: int,
        trial: optuna.Trial,
        conn_id: int,
        worker: dict[str, Any],
        profile: str | None = None,
    ) -> Lease:
        now = self._clock()
        lease = self._leases[trial_id] = Lease(trial, conn_id, worker, now, now, profile=profile)
        return lease

    def park(self, trial_id: int, trial: optuna.Trial, profile: str) -> Lease:
        """A new trial made for ``profile``, not for the worker that asked: it waits, RUNNING
        and held by no connection, for a worker of its profile (:meth:`take_parked`)."""
        now = self._clock()
        lease = Lease(trial, None, {}, now, now, profile=profile, parked=True)
        self._leases[trial_id] = lease
        self._parked.append(trial_id)
        return lease

    def parked_ids(self) -> list[int]:
        """The parked trials, oldest first."""
        self._parked = [tid for tid in self._parked if self._is_parked(tid)]
        return list(self._parked)

    def take_parked(
        self, conn_id: int, profile: str | None, worker: dict[str, Any]
    ) -> Lease | None:
        """Start the oldest trial parked for ``profile`` on ``conn_id``, or return ``None``."""
        for trial_id in self.parked_ids():
            lease = self._leases[trial_id]
            if lease.profile == profile:
                self._parked.remove(trial_id)
                lease.parked = False
                lease.conn_id, lease.worker = conn_id, worker
                lease.started = lease.last_seen = self._clock()
                return lease
        return None

    def _is_parked(self, trial_id: int) -> bool:
        lease = self._leases.get(trial_id)
        return lease is not None and lease.parked and lease.closed is None

    def touch(self, trial_id: int, conn_id: int | None = None) -> Lease:
        """The lease of a running trial, marked alive now; raises if it is not running, or,
        with ``conn_id``, if another connection holds it (a worker acts only on its own
        trial)."""
        lease = self._leases.get(trial_id)
        if lease is None or lease.closed is not None:
            number: int | None
            if lease is not None:
                number, why = lease.number, lease.closed or "it has ended"
            else:
                number, why = self._ended.get(
                    trial_id, (None, "it is not running in this optimization")
                )
            name = f"Trial {number}" if number is not None else f"The trial with id {trial_id}"
            raise UpdateFinishedTrialError(f"{name} is no longer running on the driver: {why}.")
        if conn_id is not None and conn_id != lease.conn_id:
            if conn_id in lease.former_conns:
                raise UpdateFinishedTrialError(
                    f"Trial {lease.number} is no longer run by this worker: it was taken for "
                    "lost, and the trial resumes on another worker."
                )
            raise PermissionError(
                f"Trial {lease.number} is held by another worker's connection: a worker may "
                "act only on the trial it was handed."
            )
        lease.last_seen = self._clock()
        return lease

    def find(self, trial_id: int) -> Lease | None:
        """The lease of a running trial, or ``None`` (nothing is marked)."""
        lease = self._leases.get(trial_id)
        return lease if lease is not None and lease.closed is None else None

    def lease_of(self, trial_id: int) -> Lease | None:
        """The lease of a trial this run is not done with: running, waiting to resume, or
        ending (until the storage has its end), or ``None``."""
        return self._leases.get(trial_id)

    def close(self, trial_id: int, why: str) -> Lease:
        """The trial's end is known (``why``, for a call about it that comes later): no call
        may act on it any more, but it stays until :meth:`release`."""
        lease = self._leases[trial_id]
        lease.closed = why
        return lease

    def release(self, trial_id: int) -> Lease:
        """Remove a closed lease: the storage has accepted the trial's end."""
        lease = self._leases.pop(trial_id)
        self._ended[trial_id] = (lease.number, lease.closed or "it has ended")
        return lease

    def suspend(self, trial_id: int, lost: dict[str, Any]) -> Lease:
        """The trial's worker was lost (``lost`` says how): the trial waits, RUNNING and held
        by no connection, for the next ask to resume it (:meth:`take_suspended`)."""
        lease = self._leases[trial_id]
        if lease.conn_id is not None:
            lease.former_conns.add(lease.conn_id)
        lease.conn_id = None
        lease.lost = lost
        self._suspended.append(trial_id)
        return lease

    def suspended_ids(self) -> list[int]:
        """The trials waiting to resume, oldest loss first."""
        self._suspended = [tid for tid in self._suspended if self._is_suspended(tid)]
        return list(self._suspended)

    def take_suspended(self, conn_id: int, profile: str | None = None) -> Lease | None:
        """Hand the trial that has waited longest to resume to ``conn_id``, or ``None``; one of
        another resource profile than ``profile`` waits for a worker of its own."""
        for trial_id in self.suspended_ids():
            lease = self._leases[trial_id]
            if lease.profile in (None, profile):
                self._suspended.remove(trial_id)
                lease.conn_id = conn_id
                lease.last_seen = self._clock()
                return lease
        return None

    def _is_suspended(self, trial_id: int) -> bool:
        lease = self._leases.get(trial_id)
        return lease is not None and lease.suspended

    def adopt(self, trial_id: int, trial: optuna.Trial, lost: dict[str, Any]) -> Lease:
        """A trial a dead run left RUNNING, suspended here to resume (see :meth:`suspend`)."""
        now = self._clock()
        lease = self._leases[trial_id] = Lease(trial, None, {}, now, now, lost=lost)
        self._suspended.append(trial_id)
        return lease

    def heartbeat(self, conn_id: int, trial_ids: list[int]) -> m.HeartbeatReply:
        """Mark the trials of ``trial_ids`` that ``conn_id`` holds alive; the reply lists the
        others (not running any more, or not this connection's: its heartbeats keep nothing
        else alive), and those asked to save and hand back."""
        now = self._clock()
        gone, save = [], []
        for trial_id in trial_ids:
            lease = self._leases.get(trial_id)
            if lease is None or lease.closed is not None or lease.conn_id != conn_id:
                gone.append(trial_id)
            else:
                lease.last_seen = now
                if lease.save_requested:
                    save.append(trial_id)
        return m.HeartbeatReply(gone, save)

    def decommission(self, executor_id: str) -> list[int]:
        """Executor ``executor_id`` is being decommissioned: ask its running trials to save
        and hand back, and give its workers no new trial; returns those trials' numbers."""
        self.decommissioned.add(executor_id)
        asked = []
        for lease in self._leases.values():
            running = lease.closed is None and lease.conn_id is not None
            if running and str(lease.worker.get("executor_id")) == executor_id:
                lease.save_requested = True
                asked.append(lease.number)
        return asked

    def executors(self) -> set[str]:
        """The executors of the running trials (as their workers described them)."""
        return {
            str(lease.worker["executor_id"])
            for lease in self._leases.values()
            if lease.closed is None and lease.conn_id is not None and "executor_id" in lease.worker
        }

    def check_free(self, conn_id: int) -> None:
        """Raise unless ``conn_id`` holds no running trial (a connection runs one at a time)."""
        held = self.held_by(conn_id)
        if held:
            raise RuntimeError(
                f"This connection still runs the trial with id {held[0]}: tell how it ended "
                "before asking for another."
            )

    def held_by(self, conn_id: int) -> list[int]:
        return [
            tid
            for tid, lease in self._leases.items()
            if lease.conn_id == conn_id and lease.closed is None
        ]

    def expired(self) -> list[Expiry]:
        """Leases past their heartbeat grace (lost) or their trial timeout."""
        now = self._clock()
        out = []
        for trial_id, lease in self._leases.items():
            if lease.closed is not None or lease.waiting:
                continue
            silent = now - lease.last_seen
            if silent > self.heartbeat_grace and not lease.busy:
                reason = (
                    f"worker lost: no heartbeat for {silent:.1f} s "
                    f"(grace {self.heartbeat_grace:g} s)"
                )
                out.append(Expiry(trial_id, reason, lost=True))
            elif self.trial_timeout is not None and now - lease.started > self.trial_timeout:
                reason = f"timeout: the trial ran longer than {self.trial_timeout:g} s"
                out.append(Expiry(trial_id, reason, lost=False))
        return out


def worker_key(worker: m.WorkerInfo, conn_id: int) -> Hashable:
    """One worker, for counting those told to stop: its Spark partition (within its
    profile's stage), else its connection."""
    key = worker.partition if worker.partition is not None else f"c{conn_id}"
    return key if worker.profile is None else (worker.profile, key)


def worker_record(worker: m.WorkerInfo, run_id: str) -> dict[str, Any]:
    """What is recorded on a trial about where it ran (``optuna_spark:worker``)."""
    record = {k: v for k, v in msgspec.structs.asdict(worker).items() if v is not None}
    record.update(record.pop("extra", {}))
    record["run_id"] = run_id
    return record


def write_reports(lease: Lease) -> None:
    """Write the reports waiting on ``lease`` to the storage, oldest first (each removed once
    the storage has it); the trial's in-memory view has them already."""
    storage = optuna_adapter.storage_of(lease.trial.study)
    trial_id = optuna_adapter.trial_id_of(lease.trial)
    with lease.write_lock:
        while lease.pending:
            step, value = lease.pending[0]
            storage.set_trial_intermediate_value(trial_id, step, value)
            lease.pending.pop(0)
