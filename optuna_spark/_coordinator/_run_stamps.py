"""Run stamps, and the recovery of trials left RUNNING by a run whose coordinator died.

Each run keeps a *run stamp* in the study's system attributes, under
``optuna_spark:driver:<run id>``: ``{"alive": unix time, "done": bool, "machine": ...,
"pid": ..., "started": ...}``, renewed every :data:`STAMP_RENEW` seconds while it runs. Every
trial records the id of the run that started it. A run fails the RUNNING trials of runs that
are over, when it starts and then every :data:`CHECK_EVERY` seconds; a run is over when

- its stamp says it is done, or
- it ran on this machine and its driver process is gone (a restart after a crash sees that at
  once, whatever ``heartbeat_grace`` is), or
- its stamp has not been renewed for :data:`STAMP_STALE` seconds (a driver on another
  machine).

A live run renews its stamp long before it goes stale, so two live drivers on one study never
fail each other's trials. Trials that no run of ours started (no run id) are left alone.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark import _proc
from optuna_spark._coordinator._attrs import ATTR_RUN
from optuna_spark._coordinator._attrs import ATTR_RUN_STAMP_PREFIX
from optuna_spark._coordinator._attrs import ATTR_WORKER
from optuna_spark._coordinator._patience import is_transient
from optuna_spark._coordinator._trials import fail_trial

_logger = logging.getLogger(__name__)

#: Seconds between renewals of a run's stamp.
STAMP_RENEW = 2.0
#: Seconds without a renewal after which a run on another machine is taken for dead.
STAMP_STALE = 15.0
#: Seconds between a live run's checks for trials of dead runs.
CHECK_EVERY = 5.0


def _machine() -> str:
    """This machine: its host name and, on Linux, this boot (a pid means nothing across)."""
    boot = ""
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return f"{socket.gethostname()}/{boot}"


_MACHINE = _machine()


def stamp_alive(study: optuna.Study, run_id: str, done: bool) -> None:
    """Renew run ``run_id``'s stamp (or record that it is done)."""
    pid = os.getpid()
    optuna_adapter.storage_of(study).set_study_system_attr(
        optuna_adapter.study_id_of(study),
        ATTR_RUN_STAMP_PREFIX + run_id,
        {
            "alive": time.time(),
            "done": done,
            "machine": _MACHINE,
            "pid": pid,
            "started": _proc.start_time(pid),
        },
    )


def why_over(stamp: dict[str, Any] | None, now: float) -> str | None:
    """Why the run that left ``stamp`` is over, or ``None`` while it may still be alive."""
    if not stamp:
        return "its optimization left no stamp"
    if stamp.get("done"):
        return "the optimization that ran it ended without finishing it"
    if stamp.get("machine") == _MACHINE and isinstance(stamp.get("pid"), int):
        started = _proc.start_time(stamp["pid"])
        if started is None or started != stamp.get("started", started):
            return f"the driver process (pid {stamp['pid']}) that ran it is gone"
    silent = now - float(stamp.get("alive", 0.0))
    if silent > STAMP_STALE:
        return f"the driver that ran it has been silent for {silent:.0f} s"
    return None


def run_of(trial: FrozenTrial) -> str | None:
    """The run that holds ``trial``: the one its worker record names (written when it was
    handed out, a retry or an enqueued trial included), else the one that created it."""
    run_id = (trial.system_attrs.get(ATTR_WORKER) or {}).get("run_id")
    return run_id if run_id is not None else trial.system_attrs.get(ATTR_RUN)


#: ``adopt(trial, why)``: whether the run takes over the orphan ``trial`` (to resume it)
#: instead of failing it; ``why`` says why its run is over.
Adopt = Callable[[FrozenTrial, str], bool]


def fail_orphans(
    study: optuna.Study, own_run_id: str | None = None, adopt: Adopt | None = None
) -> list[int]:
    """Fail the RUNNING trials of runs that are over, but those ``adopt`` takes over;
    returns the numbers of the failed ones."""
    storage = optuna_adapter.storage_of(study)
    study_id = optuna_adapter.study_id_of(study)
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stamps = storage.get_study_system_attrs(study_id)
    now = time.time()
    failed = []
    for t in running:
        run_id = run_of(t)
        if run_id is None or run_id == own_run_id:
            continue  # not ours (some other process runs it), or this run's own
        why = why_over(stamps.get(ATTR_RUN_STAMP_PREFIX + run_id), now)
        if why is None or (adopt is not None and adopt(t, why)):
            continue
        reason = f"driver lost: {why}"
        if not fail_trial(storage, optuna_adapter.trial_id_of(t), reason):
            continue  # another driver failed it first
        _logger.warning("Trial %d failed: %s.", t.number, reason)
        failed.append(t.number)
    return failed


def fail_leftovers(study: optuna.Study, run_id: str, why: str) -> list[int]:
    """At run ``run_id``'s end, fail its trials still RUNNING in the storage (one a failing
    storage let ``study.ask()`` create but not hand out, say); returns their numbers."""
    storage = optuna_adapter.storage_of(study)
    running = storage.get_all_trials(
        optuna_adapter.study_id_of(study), deepcopy=False, states=(TrialState.RUNNING,)
    )
    failed = []
    for t in running:
        if run_of(t) == run_id and fail_trial(storage, optuna_adapter.trial_id_of(t), why):
            _logger.warning("Trial %d failed: %s.", t.number, why)
            failed.append(t.number)
    return failed


def fail_trial_left_by_ask(
    study: optuna.Study,
    error: BaseException,
    asked_at: datetime.datetime,
    run_id: str,
) -> None:
    """Fail the trial a failing ``study.ask()`` of run ``run_id`` created (or took from the
    queue) before its sampler raised; without this it would stay RUNNING with nobody to end
    it.

    It records no worker yet (every trial handed out records one as it is made): the newest
    RUNNING one that the run created, or, for a queued trial, that started since
    ``asked_at``.
    """
    storage = optuna_adapter.storage_of(study)
    with contextlib.suppress(Exception):
        running = storage.get_all_trials(
            optuna_adapter.study_id_of(study), deepcopy=False, states=(TrialState.RUNNING,)
        )
        for t in reversed(running):
            trial_id = optuna_adapter.trial_id_of(t)
            attrs = t.system_attrs
            created_here = attrs.get(ATTR_RUN) == run_id
            dequeued_since = (
                ATTR_RUN not in attrs
                and t.datetime_start is not None
                and t.datetime_start >= asked_at
            )
            if ATTR_WORKER not in attrs and (created_here or dequeued_since):
                fail_trial(storage, trial_id, f"the sampler failed while starting it: {error!r}")
                break


class RunStamp:
    """The stamp of one run: made when it starts, renewed while it runs, final at its end.

    Args:
        study: The run's study.
        run_id: The run's id.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        study: optuna.Study,
        run_id: str,
        clock: Callable[[], float],
        adopt: Adopt | None = None,
    ) -> None:
        self._study = study
        self._run_id = run_id
        self._clock = clock
        self._adopt = adopt
        self._stamped = self._checked = clock()

    def start(self) -> None:
        """Stamp the run alive, and fail (or adopt) the trials of dead runs."""
        self._stamped = self._checked = self._clock()
        stamp_alive(self._study, self._run_id, False)
        fail_orphans(self._study, self._run_id, self._adopt)

    def renew(self) -> None:
        """Renew the stamp, and look for dead runs, when either is due (not while the storage
        fails transiently: the next tick tries again)."""
        try:
            self._renew()
        except Exception as e:
            if not is_transient(e):
                raise
            _logger.debug("Could not renew the run's stamp: %s", e)

    def _renew(self) -> None:
        now = self._clock()
        if now - self._stamped > STAMP_RENEW:
            self._stamped = now
            stamp_alive(self._study, self._run_id, False)
        if now - self._checked > CHECK_EVERY:
            self._checked = now
            fail_orphans(self._study, self._run_id, self._adopt)  # runs that died meanwhile

    def finish(self) -> None:
        """Stamp the run over (a stamp left "alive" by a failing storage goes stale)."""
        try:
            stamp_alive(self._study, self._run_id, True)
        except Exception:
            _logger.warning("Could not stamp the run over.", exc_info=True)
