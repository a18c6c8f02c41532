"""The lease table: which connection runs which trial, its signs of life and its deadlines."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import msgspec
import optuna
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark.wire import messages as m


@dataclasses.dataclass
class Lease:
    """A running trial, held by the worker on connection ``conn_id``."""

    trial: optuna.Trial
    conn_id: int
    worker: dict[str, Any]
    started: float
    last_seen: float
    busy: int = 0  # calls of its worker in progress (waiting for the sampler, say)
    output: list[str] = dataclasses.field(default_factory=list)  # what the objective printed
    output_chars: int = 0  # their total length

    @property
    def number(self) -> int:
        return self.trial.number


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

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._leases

    def ids(self) -> list[int]:
        return list(self._leases)

    def grant(
        self, trial_id: int, trial: optuna.Trial, conn_id: int, worker: dict[str, Any]
    ) -> Lease:
        now = self._clock()
        lease = self._leases[trial_id] = Lease(trial, conn_id, worker, now, now)
        return lease

    def touch(self, trial_id: int) -> Lease:
        """The lease of a running trial, marked alive now; raises if it is not running."""
        lease = self._leases.get(trial_id)
        if lease is None:
            number, why = self._ended.get(
                trial_id, (None, "it is not running in this optimization")
            )
            name = f"Trial {number}" if number is not None else f"The trial with id {trial_id}"
            raise UpdateFinishedTrialError(f"{name} is no longer running on the driver: {why}.")
        lease.last_seen = self._clock()
        return lease

    def find(self, trial_id: int) -> Lease | None:
        """The lease of a running trial, or ``None`` (nothing is marked)."""
        return self._leases.get(trial_id)

    def release(self, trial_id: int, ended_by_driver: str | None = None) -> Lease:
        """Remove a lease; ``ended_by_driver`` says why, for a worker that calls later."""
        lease = self._leases.pop(trial_id)
        if ended_by_driver is not None:
            self._ended[trial_id] = (lease.number, ended_by_driver)
        return lease

    def heartbeat(self, trial_ids: list[int]) -> list[int]:
        """Mark ``trial_ids`` alive; returns those that are not running any more."""
        now = self._clock()
        gone = []
        for trial_id in trial_ids:
            lease = self._leases.get(trial_id)
            if lease is None:
                gone.append(trial_id)
            else:
                lease.last_seen = now
        return gone

    def held_by(self, conn_id: int) -> list[int]:
        return [tid for tid, lease in self._leases.items() if lease.conn_id == conn_id]

    def expired(self) -> list[Expiry]:
        """Leases past their heartbeat grace (lost) or their trial timeout."""
        now = self._clock()
        out = []
        for trial_id, lease in self._leases.items():
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


def worker_record(worker: m.WorkerInfo, run_id: str) -> dict[str, Any]:
    """What is recorded on a trial about where it ran (``optuna_spark:worker``)."""
    record = {k: v for k, v in msgspec.structs.asdict(worker).items() if v is not None}
    record.update(record.pop("extra", {}))
    record["run_id"] = run_id
    return record
