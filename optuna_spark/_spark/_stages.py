"""Resources chosen per trial (``TrialResources``): one Spark job per resource profile, each
its own stage and workers, followed as one job."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from optuna_spark._spark import _session
from optuna_spark._spark._job import CANCEL_WAIT
from optuna_spark._spark._job import SparkJob
from optuna_spark._spark._resources import TrialResources
from optuna_spark._spark._resources import task_profile
from optuna_spark._spark._settings import CallOptions
from optuna_spark._spark._settings import n_workers_for
from optuna_spark.wire.spec import ProfileChoice
from optuna_spark.wire.spec import WorkerSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass(frozen=True)
class Stage:
    """The workers of one resource profile: how many, under which ``ResourceProfile``."""

    n_workers: int
    profile: Any


class JobSet:
    """Several :class:`SparkJob` followed as one (the ``Job`` that ``supervise`` reads).

    It has finished when every job has, or when one failed: a profile's workers that Spark
    gave up on leave its trials with no worker, so the run is closed as for one job. A job
    that ends by itself (its workers told to stop) leaves the others running.
    """

    def __init__(self, jobs: list[SparkJob]) -> None:
        self.jobs = jobs

    @property
    def finished(self) -> bool:
        ended = [job for job in self.jobs if job.finished]
        return len(ended) == len(self.jobs) or any(job.error is not None for job in ended)

    @property
    def error(self) -> BaseException | None:
        return next((job.error for job in self.jobs if job.error is not None), None)

    def start(self) -> None:
        for job in self.jobs:
            job.start()

    def cancel(self, wait: float = CANCEL_WAIT) -> bool:
        return all([job.cancel(wait) for job in self.jobs])  # every one, even after a miss

    def detach(self) -> None:
        for job in self.jobs:
            job.detach()

    def failure_message(self) -> str | None:
        return next(
            (f"{job.name}: {job.failure_message()}" for job in self.jobs if job.error), None
        )


def worker_jobs(
    spark: SparkSession,
    *,
    name: str,
    group: str,
    n_workers: int,
    spec: WorkerSpec,
    task_of: Callable[[WorkerSpec], Any],
    on_end: Callable[[], None],
    profile: Any,
    stages: Mapping[str, Stage] | None,
) -> SparkJob | JobSet:
    """The job of a run's (or a pool's) workers: one stage of ``n_workers`` tasks under
    ``profile``; or, with ``stages``, one job per resource profile, whose workers serve that
    profile's trials only."""
    if stages is None:
        return SparkJob(spark, name, group, n_workers, task_of(spec), on_end, profile)
    return JobSet(
        [
            SparkJob(
                spark,
                f"{name}, profile '{key}'",
                f"{group}-{i}",
                stage.n_workers,
                task_of(dataclasses.replace(spec, profile=key)),
                on_end,
                stage.profile,
            )
            for i, (key, stage) in enumerate(stages.items())
        ]
    )


def stages_for(
    spark: SparkSession,
    by_trial: TrialResources | None,
    n_workers: int | None,
    n_trials: int | None,
) -> dict[str, Stage] | None:
    """Each profile's stage of ``by_trial`` (``None`` without it): its workers (by default
    ``n_workers``, else the session's slots, at most ``n_trials``) and ``ResourceProfile``."""
    if by_trial is None:
        return None
    default = n_workers_for(n_workers, _session.default_parallelism(spark), n_trials)
    workers = by_trial.workers(default)
    return {
        name: Stage(workers[name], task_profile(spark, resources))
        for name, resources in by_trial.profiles.items()
    }


def profile_choice(by_trial: TrialResources | None, options: CallOptions) -> ProfileChoice | None:
    """What the runs are told of ``by_trial``: its chooser, and each profile's workers."""
    if by_trial is None or options.stages is None:
        return None
    workers = {name: stage.n_workers for name, stage in options.stages.items()}
    return ProfileChoice(by_trial.choose, workers)
