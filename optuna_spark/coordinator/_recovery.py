"""Recovery of trials left RUNNING by an earlier run whose driver died.

Each run keeps a lease in the study's system attributes, under
``optuna_spark:driver:<run id>``: ``{"alive": unix time, "done": bool, "machine": ...,
"pid": ..., "started": ...}``, renewed every :data:`LEASE_RENEW` seconds while it runs. Every
trial records the id of the run that started it. A run fails the RUNNING trials of runs that
are over, when it starts and then every :data:`CHECK_EVERY` seconds; a run is over when

- its lease says it is done, or
- it ran on this machine and its driver process is gone (a restart after a crash sees that at
  once, whatever ``heartbeat_grace`` is), or
- its lease has not been renewed for :data:`LEASE_STALE` seconds (a driver on another
  machine).

A live run renews its lease long before it goes stale, so two live drivers on one study never
fail each other's trials. Trials that no run of ours started (no run id) are left alone.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import time
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.coordinator._attrs import ATTR_DRIVER_PREFIX
from optuna_spark.coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark.coordinator._attrs import ATTR_WORKER

_logger = logging.getLogger(__name__)

#: Seconds between renewals of a run's lease.
LEASE_RENEW = 2.0
#: Seconds without a renewal after which a run on another machine is taken for dead.
LEASE_STALE = 15.0
#: Seconds between a live run's checks for trials of dead runs.
CHECK_EVERY = 5.0


def _machine() -> str:
    """This machine: its host name and, on Linux, this boot (a pid means nothing across)."""
    boot = ""
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return f"{socket.gethostname()}/{boot}"


def _process_started(pid: int) -> str | None:
    """When process ``pid`` started (Linux clock ticks since boot), ``None`` if it is gone.

    With the start time, a pid that was reused by another process is not taken for the
    driver. Elsewhere only whether some process has the pid is known.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return "?"


_MACHINE = _machine()


def stamp_alive(study: optuna.Study, run_id: str, done: bool) -> None:
    """Renew run ``run_id``'s lease (or record that it is done)."""
    pid = os.getpid()
    optuna_adapter.storage_of(study).set_study_system_attr(
        optuna_adapter.study_id_of(study),
        ATTR_DRIVER_PREFIX + run_id,
        {
            "alive": time.time(),
            "done": done,
            "machine": _MACHINE,
            "pid": pid,
            "started": _process_started(pid),
        },
    )


def why_over(lease: dict[str, Any] | None, now: float) -> str | None:
    """Why the run holding ``lease`` is over, or ``None`` while it may still be alive."""
    if not lease:
        return "its optimization left no lease"
    if lease.get("done"):
        return "the optimization that ran it ended without finishing it"
    if lease.get("machine") == _MACHINE and isinstance(lease.get("pid"), int):
        started = _process_started(lease["pid"])
        if started is None or started != lease.get("started", started):
            return f"the driver process (pid {lease['pid']}) that ran it is gone"
    silent = now - float(lease.get("alive", 0.0))
    if silent > LEASE_STALE:
        return f"the driver that ran it has been silent for {silent:.0f} s"
    return None


def fail_orphans(study: optuna.Study, own_run_id: str | None = None) -> list[int]:
    """Fail the RUNNING trials of runs that are over; returns their numbers."""
    storage = optuna_adapter.storage_of(study)
    study_id = optuna_adapter.study_id_of(study)
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    leases = storage.get_study_system_attrs(study_id)
    now = time.time()
    failed = []
    for t in running:
        run_id = t.system_attrs.get(ATTR_WORKER, {}).get("run_id")
        if run_id is None or run_id == own_run_id:
            continue  # not ours (some other process runs it), or this run's own
        why = why_over(leases.get(ATTR_DRIVER_PREFIX + run_id), now)
        if why is None:
            continue
        reason = f"driver lost: {why}"
        trial_id = optuna_adapter.trial_id_of(t)
        try:
            storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another driver failed it first
        _logger.warning("Trial %d failed: %s.", t.number, reason)
        failed.append(t.number)
    return failed


def fail_trial_left_by_ask(
    study: optuna.Study,
    error: BaseException,
    asked_at: datetime.datetime,
    leased: Container[int],
) -> None:
    """Fail the trial a failing ``study.ask()`` created before its sampler raised.

    It is the newest RUNNING trial started since ``asked_at`` that no worker holds and that
    records no worker; without this it would stay RUNNING with nobody to end it.
    """
    storage = optuna_adapter.storage_of(study)
    with contextlib.suppress(Exception):
        running = storage.get_all_trials(
            optuna_adapter.study_id_of(study), deepcopy=False, states=(TrialState.RUNNING,)
        )
        for t in reversed(running):
            trial_id = optuna_adapter.trial_id_of(t)
            if (
                trial_id not in leased
                and ATTR_WORKER not in t.system_attrs
                and t.datetime_start is not None
                and t.datetime_start >= asked_at
            ):
                reason = f"the sampler failed while starting it: {error!r}"
                storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
                break
