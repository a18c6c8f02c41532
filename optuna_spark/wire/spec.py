"""The typed contract between the executor, the run and its workers, in both placements.

:class:`RunConfig` is what a run is told (``n_trials``, ``timeout``, callbacks, time limits,
where parameters are sampled); :class:`WorkerSpec` is what each worker starts with (where the
run is served, which run, how it beats and cleans up). Both are frozen: built once, checked
once, then shipped as they are, by the executor to a run on the driver, or pickled into the
Spark closure for a run in the cluster (``coordinator="cluster"``) and its workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import Literal

import optuna
from optuna.trial import FrozenTrial

from optuna_spark._validate import check_positive
from optuna_spark.wire._client import Endpoint

#: Where parameters are sampled: by the run's sampler (``"driver"``), or by a copy of it on
#: each worker (``"workers"``).
Sampling = Literal["driver", "workers"]
SAMPLING_PLACES: tuple[Sampling, ...] = ("driver", "workers")

#: ``callback(study, frozen_trial)``, as ``Study.optimize`` calls it after each trial.
Callback = Callable[[optuna.Study, FrozenTrial], None]


def check_sampling_place(sampling: object) -> None:
    """Refuse a sampling placement that does not exist."""
    if sampling not in SAMPLING_PLACES:
        raise ValueError(f"sampling must be 'driver' or 'workers', but got {sampling!r}.")


@dataclasses.dataclass(frozen=True)
class ProfileChoice:
    """Trials handed out by resource profile: each worker serves one profile (its Spark
    stage's resources), and each new trial runs on a worker of the profile ``choose`` names.

    Attributes:
        choose: Called by the run with each new ``optuna.Trial``, under its sampler, before
            the trial is handed out: it suggests the parameters that decide the trial's
            resources (as the objective will) and returns the name of a profile.
        workers: How many workers each profile has, by name. A trial made for another
            profile than the asking worker's waits for one of its own; at most as many
            trials wait as there are workers in all.
    """

    choose: Callable[[optuna.Trial], str]
    workers: Mapping[str, int]

    def __post_init__(self) -> None:
        if not callable(self.choose):
            raise TypeError(f"choose must be callable, but got {self.choose!r}.")
        workers = dict(self.workers)
        if not workers or not all(
            isinstance(name, str) and isinstance(n, int) and not isinstance(n, bool) and n > 0
            for name, n in workers.items()
        ):
            raise ValueError(
                "workers must map each profile's name to its number of workers (a positive "
                f"int), but got {self.workers!r}."
            )
        object.__setattr__(self, "workers", workers)

    def check_worker(self, profile: str | None) -> None:
        """Refuse a worker that serves none of the profiles (it would never get a trial)."""
        if profile not in self.workers:
            raise ValueError(
                f"This run hands each trial to a worker of its resource profile "
                f"({sorted(self.workers)}), but this worker serves {profile!r}: start it "
                "with a WorkerSpec whose profile names one of them."
            )

    def check(self, name: object) -> str:
        """``name``, which ``choose`` returned, if it names a profile; else a clear error."""
        if not isinstance(name, str) or name not in self.workers:
            raise ValueError(
                f"The resource profile chooser returned {name!r}, which is not one of the "
                f"profiles {sorted(self.workers)}: return the name of one of them."
            )
        return name


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What one distributed optimization is told (:class:`~optuna_spark.remote.StudyRun`).

    Every field is checked when the config is made, so that a bad value fails before anything
    starts (no session, no server, nothing written to the study).

    Attributes:
        n_trials: How many trials this run starts at most (``None``: no limit).
        timeout: Seconds after which no new trial starts (``None``: no limit).
        callbacks: Called as ``callback(study, frozen_trial)`` after each trial, in the order
            the trials ended, on a thread of the run's own (never holding up a worker); all
            have run when the run is over. Their ``study.stop()`` stops the run.
        heartbeat_grace: Seconds without any sign of life after which a running trial is
            failed as lost.
        trial_timeout: Seconds a trial may run before it is failed with reason "timeout".
        stop_running_trials: Whether running trials are told to stop (``should_prune`` answers
            ``True``) when the run stops for a timeout, ``study.stop()``, an error or an
            interruption. Without it they run to completion, as in ``Study.optimize``.
        retry_lost_trials: Re-run the parameters of a trial whose worker was lost, once, as a
            new trial (after its resumes, if any, are used up).
        resume_lost_trials: How many times a trial whose worker was lost resumes: it stays
            RUNNING, keeps its number, parameters and reports, and the next worker that asks
            runs the objective again for it (before any new trial), where
            ``optuna_spark.checkpoint.load`` returns its last checkpoint. ``0``: a lost trial
            fails ("worker lost").
        checkpoint_store: The Optuna artifact store ``optuna_spark.checkpoint`` saves to on
            the workers (``None``: saving a checkpoint there raises ``CheckpointError``).
        keep_checkpoints: Keep a finished trial's last checkpoint (by default it is removed
            once the trial's end is recorded).
        storage_grace: Seconds the run rides out a storage that fails transiently (its
            connection refused or closed: a database restarting or failing over, a locked
            SQLite file): storage calls are retried with backoff, reports and pruning
            questions are answered from what the run knows, and trials' ends are written
            when the storage is back. Past it, the run stops with ``StorageUnavailableError``.
            ``0``: the first error stops it, as in ``Study.optimize``.
        sampling: Where parameters are sampled. ``"driver"``: by ``study.sampler``, here,
            one suggestion at a time. ``"workers"``: each worker samples with its own copy of
            it (see ``StudyRun.worker_spec``); the run still creates and numbers the trials,
            prunes, runs callbacks and keeps ``n_trials``. Samplers that hand out each point
            once (``GridSampler``, ``BruteForceSampler``, ``LOCOSampler``) are refused there.
        log_artifact_store: An Optuna artifact store: each trial's whole output (what its
            objective printed and logged, up to 1 MiB) becomes its artifact
            ``trial-<number>.log``. The last 64 KiB are kept on the trial either way.
        max_concurrent_trials: How many of this run's trials may be in flight at once
            (``None``: as many as there are workers). Lower it so that an adaptive sampler
            learns from its own results between trials, as in a pool of many studies.
        profiles: Hand each trial to a worker of the resource profile its parameters call
            for (:class:`ProfileChoice`); ``None``: any worker runs any trial.
    """

    n_trials: int | None = None
    timeout: float | None = None
    callbacks: tuple[Callback, ...] = ()
    heartbeat_grace: float = 30.0
    trial_timeout: float | None = None
    stop_running_trials: bool = True
    retry_lost_trials: bool = False
    resume_lost_trials: int = 0
    checkpoint_store: Any = None
    keep_checkpoints: bool = False
    storage_grace: float = 60.0
    sampling: Sampling = "driver"
    log_artifact_store: Any = None
    max_concurrent_trials: int | None = None
    profiles: ProfileChoice | None = None

    def __post_init__(self) -> None:
        check_n_trials(self.n_trials)
        check_max_concurrent_trials(self.max_concurrent_trials)
        check_positive("storage_grace", self.storage_grace, allow_zero=True)
        check_resume_lost_trials(self.resume_lost_trials)
        check_positive("timeout", self.timeout)
        check_positive("heartbeat_grace", self.heartbeat_grace)
        check_positive("trial_timeout", self.trial_timeout)
        check_sampling_place(self.sampling)
        if self.profiles is not None and self.sampling != "driver":
            raise ValueError(
                "Resources chosen by a trial's parameters need sampling='driver': the run "
                "samples those parameters before it knows which worker runs the trial."
            )
        callbacks = tuple(self.callbacks)
        for callback in callbacks:
            if not callable(callback):
                raise TypeError(f"Every callback must be callable, but got {callback!r}.")
        object.__setattr__(self, "callbacks", callbacks)

    @classmethod
    def of(cls, callbacks: Iterable[Callback] | None = None, **fields: Any) -> RunConfig:
        """A config whose ``callbacks`` may be any iterable (or ``None``), as users pass them."""
        return cls(callbacks=tuple(callbacks or ()), **fields)


def check_resume_lost_trials(resume_lost_trials: object) -> None:
    """``resume_lost_trials``: a non-negative int."""
    if (
        isinstance(resume_lost_trials, bool)
        or not isinstance(resume_lost_trials, int)
        or resume_lost_trials < 0
    ):
        raise ValueError(
            "resume_lost_trials must be a non-negative int (how many times a trial whose "
            f"worker was lost resumes), but got {resume_lost_trials=}."
        )


def check_max_concurrent_trials(max_concurrent_trials: object) -> None:
    """``max_concurrent_trials``: a positive int or ``None``."""
    if max_concurrent_trials is not None and (
        isinstance(max_concurrent_trials, bool)
        or not isinstance(max_concurrent_trials, int)
        or max_concurrent_trials < 1
    ):
        raise ValueError(
            "max_concurrent_trials must be a positive int (trials of one study in flight at "
            f"once) or None, but got {max_concurrent_trials=}."
        )


def check_n_trials(n_trials: object) -> None:
    """``n_trials`` as ``Study.optimize`` accepts it: a non-negative int or ``None``."""
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int)):
        raise TypeError(f"n_trials must be an int or None, but got {n_trials=}.")
    check_positive("n_trials", n_trials, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to join a run: where the run is served and which run it is.

    It pickles into a Spark closure and holds the server's token. Make it with
    :meth:`StudyRun.worker_spec <optuna_spark.remote.StudyRun.worker_spec>`, which sets
    ``sampler`` and ``pruner`` when the run samples on its workers.

    Attributes:
        endpoint: The run's service.
        run_id: The run to serve.
        heartbeat_interval: Seconds between the heartbeats of a busy worker.
        exit_if_stuck_after: End the worker process when a trial the run has failed (for its
            time limit) still runs this many seconds later.
        sampler: Sample each trial's parameters here, with a copy of this sampler, instead of
            asking the run (``sampling="workers"``).
        pruner: The study's pruner, for what ``sampler`` sees of the study (pruning itself is
            always decided by the run).
        gc_after_trial: Run ``gc.collect()`` after each trial, as ``Study.optimize`` does
            with ``gc_after_trial=True``.
        checkpoint_store: Where ``optuna_spark.checkpoint`` saves (the run's
            ``checkpoint_store``).
        keep_checkpoints: Keep a finished trial's last checkpoint (else the worker removes
            it once the run has recorded the trial's end).
        pool: ``run_id`` names a pool of runs (``RunPool``): the worker asks the pool, which
            hands out trials of any of its studies.
        samplers: With ``pool``, the sampler and pruner of each run that samples on its
            workers, by run id.
        profile: The resource profile this worker serves (see :class:`ProfileChoice`):
            it is handed only trials made for that profile.
    """

    endpoint: Endpoint
    run_id: str
    heartbeat_interval: float = 5.0
    exit_if_stuck_after: float | None = None
    sampler: optuna.samplers.BaseSampler | None = None
    pruner: optuna.pruners.BasePruner | None = None
    gc_after_trial: bool = False
    checkpoint_store: Any = None
    keep_checkpoints: bool = False
    pool: bool = False
    samplers: Mapping[str, tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]] = (
        dataclasses.field(default_factory=dict)
    )
    profile: str | None = None

    def __post_init__(self) -> None:
        check_positive("heartbeat_interval", self.heartbeat_interval)
        check_positive("exit_if_stuck_after", self.exit_if_stuck_after)

    @classmethod
    def for_run(
        cls,
        endpoint: Endpoint,
        run_id: str,
        *,
        sampling: Sampling,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        heartbeat_interval: float = 5.0,
        exit_if_stuck_after: float | None = None,
        gc_after_trial: bool = False,
        checkpoint_store: Any = None,
        keep_checkpoints: bool = False,
    ) -> WorkerSpec:
        """The spec of a run's workers: ``sampler`` and ``pruner`` travel with it only when
        the workers sample (``sampling="workers"``)."""
        on_workers = sampling == "workers"
        return cls(
            endpoint,
            run_id,
            heartbeat_interval=heartbeat_interval,
            exit_if_stuck_after=exit_if_stuck_after,
            sampler=sampler if on_workers else None,
            pruner=pruner if on_workers else None,
            gc_after_trial=gc_after_trial,
            checkpoint_store=checkpoint_store,
            keep_checkpoints=keep_checkpoints,
        )
