"""The calls a run makes into Optuna for a worker: make a trial, run a trial method, prune.

Each is a plain function of the driver's ``optuna.Trial`` or study, with no lock of its own:
:class:`~optuna_spark._coordinator._run.StudyRun` decides which of its locks each one runs
under (the sampler's for :func:`make_trial` and sampling calls, none for the rest).
"""

from __future__ import annotations

import datetime
from typing import Any

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._attrs import ATTR_WORKER
from optuna_spark._coordinator._leases import worker_record
from optuna_spark._coordinator._run_stamps import fail_trial_left_by_ask
from optuna_spark._coordinator._trial_methods import SAMPLING
from optuna_spark._coordinator._trial_methods import TRIAL_METHODS
from optuna_spark._coordinator._trials import try_fail_trial
from optuna_spark._waiting import never_wait
from optuna_spark.wire import messages as m
from optuna_spark.wire.spec import ProfileChoice


def make_trial(
    study: optuna.Study,
    worker: m.WorkerInfo,
    run_id: str,
    profiles: ProfileChoice | None = None,
) -> tuple[optuna.Trial, dict[str, Any] | None, str | None]:
    """Ask ``study`` for a new trial and record on it where it runs.

    With ``profiles``, its chooser picks the trial's resource profile first (suggesting the
    parameters that decide it). Returns the trial, the record written to it
    (``optuna_spark:worker``; ``None`` when the trial is for another profile than the
    worker's, which records nothing yet) and its profile. As in ``Study.optimize``, a failing
    sampler, chooser or storage is raised; the half-made trial it may have left RUNNING is
    failed first, so that nothing waits for it.
    """
    asked_at = datetime.datetime.now()
    trial: optuna.Trial | None = None
    profile: str | None = None
    record: dict[str, Any] | None = None
    try:
        with never_wait():  # the running trials need the sampler lock the caller holds
            trial = study.ask()
            if profiles is not None:
                with optuna_adapter.in_optimize_loop(study):
                    profile = profiles.check(profiles.choose(trial))
        if profiles is None or profile == worker.profile:
            record = worker_record(worker, run_id)
            storage = optuna_adapter.storage_of(study)
            storage.set_trial_system_attr(optuna_adapter.trial_id_of(trial), ATTR_WORKER, record)
    except BaseException as e:
        if trial is None:
            fail_trial_left_by_ask(study, e, asked_at, run_id)
        else:
            try_fail_trial(
                optuna_adapter.storage_of(study),
                optuna_adapter.trial_id_of(trial),
                f"the driver failed while starting it: {e!r}",
            )
        raise
    return trial, record, profile


def start_parked(study: optuna.Study, trial_id: int, record: dict[str, Any]) -> None:
    """Record where a parked trial starts (``optuna_spark:worker``)."""
    optuna_adapter.storage_of(study).set_trial_system_attr(trial_id, ATTR_WORKER, record)


def samples(request: m.TrialRequest) -> bool:
    """Whether ``request`` runs the sampler (and so must hold the run's sampler lock)."""
    return type(request) in SAMPLING


def call_trial(trial: optuna.Trial, request: m.TrialRequest) -> Any:
    """Run the method of ``trial`` that ``request`` names, as inside ``Study.optimize``."""
    with optuna_adapter.in_optimize_loop(trial.study):
        return TRIAL_METHODS[type(request)](trial, request)


def should_prune(trial: optuna.Trial) -> bool:
    """The pruner's answer for ``trial``, from its in-memory view (its reports so far, written
    or not) and the study as the storage has it."""
    with optuna_adapter.in_optimize_loop(trial.study):
        return trial.should_prune()
