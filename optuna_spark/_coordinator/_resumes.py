"""Lost trials that resume: the policy, and what a resume records on the trial.

A trial whose worker is lost (its connection closed, its heartbeats stopped) is *suspended*
instead of failed while it has resumes left (``resume_lost_trials``): it stays RUNNING with its
number, parameters and reports, held by no worker, and the next ask runs the objective again
for it, before any new trial. The same holds for a trial a dead driver left RUNNING with a
checkpoint: the next run on the study adopts it. Each resume is recorded on the trial
(``optuna_spark:resumes``): when, from which worker, why, and at which step.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._attrs import ATTR_RESUMES
from optuna_spark._coordinator._attrs import ATTR_WORKER
from optuna_spark._coordinator._leases import Lease
from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark.checkpoint._api import ATTR_CHECKPOINT
from optuna_spark.checkpoint._api import has_checkpoint

_logger = logging.getLogger(__name__)

#: What of a worker record says where a trial ran.
_WHERE = ("host", "pid", "executor_id", "partition", "attempt", "run_id")


class ResumePolicy:
    """How many times one trial may resume after losing its worker.

    Args:
        limit: ``resume_lost_trials``: ``0`` fails every lost trial, as without resumes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def allows(self, lease: Lease) -> bool:
        """Whether the trial of ``lease`` may resume once more (hand-backs of a
        decommissioning executor do not count: nothing failed)."""
        return _losses(lease.resumes) < self.limit

    def adopts(self, trial: FrozenTrial) -> bool:
        """Whether a trial a dead run left RUNNING resumes here: it has a checkpoint (else
        nothing of its work would be kept) and resumes left."""
        return has_checkpoint(trial) and _losses(resumes_of(trial)) < self.limit


def _losses(resumes: list[dict[str, Any]]) -> int:
    return sum(1 for r in resumes if not str(r.get("reason", "")).startswith(HANDED_BACK))


#: How the resume of a trial its worker handed back starts its reason.
HANDED_BACK = "handed back"


def resumes_of(trial: FrozenTrial) -> list[dict[str, Any]]:
    """The resumes recorded on ``trial``."""
    resumes = trial.system_attrs.get(ATTR_RESUMES)
    return list(resumes) if isinstance(resumes, list) else []


def loss(worker: dict[str, Any], reason: str) -> dict[str, Any]:
    """How a trial lost its worker (kept on its lease until it resumes)."""
    return {
        "lost_at": datetime.datetime.now().isoformat(),
        "reason": reason,
        "worker": {k: worker[k] for k in _WHERE if k in worker},
    }


def record_resume(
    storage: BaseStorage, trial_id: int, lease: Lease, worker: dict[str, Any]
) -> list[dict[str, Any]]:
    """Record on the trial that it resumes on ``worker``; returns its resumes so far.

    Runs outside the run's locks (it writes to the storage); the lease is already held by the
    resuming worker's connection, so nothing else acts on the trial meanwhile.
    """
    trial = storage.get_trial(trial_id)
    checkpoint = trial.system_attrs.get(ATTR_CHECKPOINT)
    entry = {
        **(lease.lost or {}),
        "resumed_at": datetime.datetime.now().isoformat(),
        "last_step": trial.last_step,
        "checkpoint_step": checkpoint.get("step") if isinstance(checkpoint, dict) else None,
    }
    resumes = [*lease.resumes, entry]
    storage.set_trial_system_attr(trial_id, ATTR_RESUMES, resumes)
    storage.set_trial_system_attr(trial_id, ATTR_WORKER, worker)
    return resumes


class Resumer:
    """A run's resumes: suspends lost trials, hands them to the next ask, adopts the
    checkpointed trials of dead runs. Its methods marked so run under the run's bookkeeping
    lock; the others take it themselves, and write to the storage outside it.

    Args:
        policy: How many times a trial may resume.
        lock: The run's bookkeeping lock (guards ``leases``).
        sampler_lock: The run's sampler lock (an adopted trial's ``optuna.Trial`` is made
            under it: making one runs the sampler's relative sampling).
        leases: The run's lease table.
        study: The study the run's sampler sees (the adopted trials' ``trial.study``).
        storage: The study's storage.
        run_id: The run's id.
        wake: Wakes the asks waiting for something to hand out.
    """

    def __init__(
        self,
        policy: ResumePolicy,
        lock: threading.RLock,
        sampler_lock: threading.Lock,
        leases: LeaseTable,
        study: optuna.Study,
        storage: BaseStorage,
        run_id: str,
        wake: Callable[[], None],
    ) -> None:
        self.policy = policy
        self._lock = lock
        self._sampler_lock = sampler_lock
        self._leases = leases
        self._study = study
        self._storage = storage
        self._run_id = run_id
        self._wake = wake

    def suspends(self, trial_id: int, lease: Lease, reason: str, stopping: bool) -> bool:
        """(Under the lock.) Suspend the lost trial if it may resume; whether it did."""
        handed_back = reason.startswith(HANDED_BACK)
        if stopping or not (handed_back or self.policy.allows(lease)):
            return False
        self._leases.suspend(trial_id, loss(lease.worker, reason))
        if handed_back:
            _logger.info(
                "Trial %d was %s; it resumes on the next free worker.", lease.number, reason
            )
        else:
            _logger.warning(
                "Trial %d lost its worker (%s); it resumes on the next free worker "
                "(resume %d of %d).",
                lease.number,
                reason,
                _losses(lease.resumes) + 1,
                self.policy.limit,
            )
        self._wake()
        return True

    def record(self, trial_id: int, lease: Lease, worker: dict[str, Any]) -> None:
        """Record that the trial of ``lease`` (already held by the asking connection) resumes
        on ``worker`` (outside the lock)."""
        resumes = record_resume(self._storage, trial_id, lease, worker)
        with self._lock:
            lease.worker, lease.resumes, lease.lost, lease.steps = worker, resumes, None, None
            lease.save_requested = False
        _logger.info("Trial %d resumes (resume %d).", lease.number, len(resumes))

    def adopt(self, trial: FrozenTrial, why: str) -> bool:
        """Take over the orphan ``trial`` of a dead run when it may resume here (it has a
        checkpoint and resumes left): it waits, suspended, for this run's next ask."""
        if not self.policy.adopts(trial):
            return False
        trial_id = optuna_adapter.trial_id_of(trial)
        lost = loss(trial.system_attrs.get(ATTR_WORKER) or {}, f"driver lost: {why}")
        # Claimed for this run first, so that no other live run adopts or fails it.
        self._storage.set_trial_system_attr(trial_id, ATTR_WORKER, {"run_id": self._run_id})
        with self._sampler_lock:
            own = optuna.Trial(self._study, trial_id)
        with self._lock:
            lease = self._leases.adopt(trial_id, own, lost)
            lease.resumes = resumes_of(trial)
        _logger.warning(
            "Trial %d was left running by an optimization that is over (%s); it has a "
            "checkpoint and resumes on the next free worker.",
            trial.number,
            why,
        )
        self._wake()
        return True
