"""``SparkExecutor.optimize_many``: many studies on one Spark job, one service and one pool of
workers (the counterpart of ``_on_driver`` for a :class:`RunPool`)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_spark._coordinator import RunPool
from optuna_spark._coordinator import StopReason
from optuna_spark._coordinator import StudyRun
from optuna_spark._spark import _session
from optuna_spark._spark._decommission import watch_decommissions
from optuna_spark._spark._echo import OutputEcho
from optuna_spark._spark._job import SparkJob
from optuna_spark._spark._on_driver import close_all
from optuna_spark._spark._on_driver import quiet_log
from optuna_spark._spark._on_driver import server_for
from optuna_spark._spark._pool_progress import PoolProgress
from optuna_spark._spark._settings import CallOptions
from optuna_spark._spark._settings import n_workers_for
from optuna_spark._spark._stages import JobSet
from optuna_spark._spark._stages import worker_jobs
from optuna_spark._spark._supervise import interrupt
from optuna_spark._spark._supervise import supervise_pool
from optuna_spark._worker._spark_task import make_task
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.wire.spec import RunConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)

_SLICE = 1.0


class PoolPlacement:
    """``optimize_many`` with the pool's runs in this process (a ``Placement``)."""

    side = "driver"

    def __init__(
        self,
        spark: SparkSession,
        options: CallOptions,
        studies: list[tuple[optuna.Study, RunConfig]],
        funcs: Mapping[str, Any],
        catch: tuple[type[Exception], ...],
    ) -> None:
        self._spark = spark
        self._options = options
        self._funcs = dict(funcs)
        self._catch = catch
        runs = [StudyRun.from_config(study, config) for study, config in studies]
        self.pool = RunPool(runs)
        self.n_workers = options.stages_workers or n_workers_for(
            options.n_workers, _session.default_parallelism(spark), self.pool.n_trials
        )
        self._server = server_for(spark, runs[0].study, options)
        self._serving = False
        self._echo: OutputEcho | None = None
        self._progress: PoolProgress | None = None
        self._watcher: Any = None
        self._job: SparkJob | JobSet | None = None

    def start(self) -> None:
        pool = self.pool
        self._server.start()  # a refused address fails here, before anything is written
        if self._options.log_to_driver:
            self._echo = OutputEcho()
            for run in pool.runs:
                run.output_listeners.append(self._echo.of_study(run.study.study_name))
        bar = self._options.show_progress_bar
        self._progress = PoolProgress(pool, bool(bar), self.n_workers, per_study=bar == "studies")
        self._server.add_pool(pool)
        self._serving = True
        resumes = bool(pool.runs[0].config.resume_lost_trials)
        self._watcher = watch_decommissions(self._spark, pool, resumes)
        self._job = self._make_job()
        self._job.start()

    def _make_job(self) -> SparkJob | JobSet:
        settings, options, pool = self._options.settings, self._options, self.pool
        spec = pool.worker_spec(
            dataclasses.replace(
                self._server.endpoint, tls_server_hostname=options.tls_server_hostname
            ),
            heartbeat_interval=settings.heartbeat_interval,
            exit_if_stuck_after=settings.exit_if_stuck_after,
            gc_after_trial=options.gc_after_trial,
        )
        log = quiet_log(self._spark)
        return worker_jobs(
            self._spark,
            name=f"optuna-spark: {len(pool.runs)} studies on {self.n_workers} workers",
            group=f"optuna-spark-{pool.pool_id}",
            n_workers=self.n_workers,
            spec=spec,
            task_of=lambda spec: make_task(spec, self._funcs, self._catch, log),
            on_end=pool.changes.notify,
            profile=options.profile,
            stages=options.stages,
        )

    def follow(self) -> None:
        pool, job, settings = self.pool, self._job, self._options.settings
        assert job is not None  # started
        ended_early = supervise_pool(
            pool,
            job,
            n_workers=self.n_workers,
            stuck_grace=settings.stuck_grace,
            stop_running_trials=settings.stop_running_trials,
            wind_down=settings.wind_down,
        )
        raise_first_error(pool)
        if ended_early and job.error is not None:
            n = sum(run.n_finished for run in pool.runs)
            raise OptunaSparkError(
                f"The Spark job of {len(pool.runs)} studies failed before they were over "
                f"({n} trials finished): {job.failure_message()}"
            ) from job.error

    def interrupt(self, reason: str) -> None:
        self.pool.stop(StopReason.INTERRUPTED)
        interrupt(self.pool, self._job, reason)

    def close(self) -> None:
        close_all(self._watcher, self._echo, self._progress)
        if self._serving:
            self._server.remove_pool(self.pool)
        self._server.close()


def raise_first_error(pool: RunPool) -> None:
    """Raise the first study's uncaught error (the others are logged), naming its study."""
    errors = pool.errors
    for run, error in errors[1:]:
        _logger.error("Study '%s' stopped with an uncaught error: %r", run.study.study_name, error)
    if not errors:
        return
    run, error = errors[0]
    note_study(error, run.study.study_name)
    raise error


def note_study(error: BaseException, study_name: str) -> None:
    """Say on ``error`` which study of an ``optimize_many`` call it stopped."""
    note = f"Raised by an objective of study '{study_name}' in optimize_many."
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10 has no exception notes
        _logger.error(note)
