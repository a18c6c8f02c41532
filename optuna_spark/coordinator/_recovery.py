"""Recovery of trials left RUNNING by an earlier run whose driver died.

Each run stamps ``{"alive": unix time, "grace": seconds, "done": bool}`` under
``optuna_spark:driver:<run id>`` in the study's system attributes while it runs. A new run
fails the RUNNING trials of runs that are done or whose stamp is older than their grace.
Trials that no run of ours started (no run id on them) are left alone.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Container

import optuna
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.coordinator._attrs import ATTR_DRIVER_PREFIX
from optuna_spark.coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark.coordinator._attrs import ATTR_WORKER

_logger = logging.getLogger(__name__)


def stamp_alive(study: optuna.Study, run_id: str, grace: float, done: bool) -> None:
    """Record that run ``run_id`` is alive now (or done)."""
    optuna_adapter.storage_of(study).set_study_system_attr(
        optuna_adapter.study_id_of(study),
        ATTR_DRIVER_PREFIX + run_id,
        {"alive": time.time(), "grace": grace, "done": done},
    )


def fail_orphans(study: optuna.Study, default_grace: float) -> list[int]:
    """Fail the RUNNING trials of runs that are over; returns their numbers."""
    storage = optuna_adapter.storage_of(study)
    study_id = optuna_adapter.study_id_of(study)
    stamps = storage.get_study_system_attrs(study_id)
    now = time.time()
    failed = []
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        run_id = t.system_attrs.get(ATTR_WORKER, {}).get("run_id")
        if run_id is None:
            continue  # not ours: some other process runs it
        stamp = stamps.get(ATTR_DRIVER_PREFIX + run_id, {})
        silent = now - float(stamp.get("alive", 0.0))
        if stamp.get("done") or silent > float(stamp.get("grace", default_grace)):
            reason = (
                "driver lost: the optimization that ran this trial stopped "
                f"{silent:.0f} s ago without finishing it"
            )
            trial_id = optuna_adapter.trial_id_of(t)
            storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            _logger.warning("Trial %d failed: %s.", t.number, reason)
            failed.append(t.number)
    return failed


def fail_trial_left_by_ask(
    study: optuna.Study, error: Exception, asked_at: datetime.datetime, leased: Container[int]
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
