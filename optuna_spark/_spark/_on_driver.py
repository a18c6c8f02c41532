"""``coordinator="driver"``: the run and its service live in this process, the workers in one
Spark job whose tasks connect back (the counterpart of ``_cluster``)."""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator import StopReason
from optuna_spark._coordinator import StudyRun
from optuna_spark._coordinator import StudyServer
from optuna_spark._spark import _session
from optuna_spark._spark._decommission import watch_decommissions
from optuna_spark._spark._echo import OutputEcho
from optuna_spark._spark._job import SparkJob
from optuna_spark._spark._progress import ProgressBar
from optuna_spark._spark._settings import CallOptions
from optuna_spark._spark._settings import n_workers_for
from optuna_spark._spark._stages import JobSet
from optuna_spark._spark._stages import worker_jobs
from optuna_spark._spark._supervise import interrupt
from optuna_spark._spark._supervise import supervise
from optuna_spark._worker._spark_task import make_task
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.wire.spec import RunConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)


class DriverPlacement:
    """``SparkExecutor.optimize`` with the run in this process (a :class:`Placement`).

    Nothing is written to the study before the service is bound: the run starts (its stamp,
    the trials of dead runs failed) only when the server takes it, and the progress bar and
    output echo are made only then.
    """

    side = "driver"

    def __init__(
        self,
        spark: SparkSession,
        options: CallOptions,
        study: optuna.Study,
        config: RunConfig,
        func: Any,
        catch: tuple[type[Exception], ...],
    ) -> None:
        self._spark = spark
        self._options = options
        self._func = func
        self._catch = catch
        self.run = StudyRun.from_config(study, config)
        self.n_workers = options.stages_workers or n_workers_for(
            options.n_workers, _session.default_parallelism(spark), config.n_trials
        )
        self._server = server_for(spark, study, options)
        self._serving = False
        self._echo: OutputEcho | None = None
        self._progress: ProgressBar | None = None
        self._watcher: Any = None
        self._job: SparkJob | JobSet | None = None

    def start(self) -> None:
        run = self.run
        self._server.start()  # a refused address fails here, before anything is written
        if self._options.log_to_driver:
            self._echo = OutputEcho()
            run.output_listeners.append(self._echo)
        self._progress = ProgressBar(run, bool(self._options.show_progress_bar), self.n_workers)
        self._server.add_run(run)
        self._serving = True
        self._watcher = watch_decommissions(self._spark, run, bool(run.config.resume_lost_trials))
        self._job = _job(
            self._spark, run, self._server, self.n_workers, self._func, self._catch, self._options
        )
        self._job.start()

    def follow(self) -> None:
        run, job, settings = self.run, self._job, self._options.settings
        assert job is not None  # started
        ended_early = supervise(
            run,
            job,
            n_workers=self.n_workers,
            stuck_grace=settings.stuck_grace,
            stop_running_trials=settings.stop_running_trials,
            wind_down=settings.wind_down,
        )
        if run.error is not None:
            raise run.error
        if ended_early and job.error is not None:
            raise OptunaSparkError(
                f"The Spark job of study '{run.study.study_name}' failed before the study was "
                f"over ({run.n_finished} trials finished): {job.failure_message()}"
            ) from job.error

    def interrupt(self, reason: str) -> None:
        self.run.stop(StopReason.INTERRUPTED)
        interrupt(self.run, self._job, reason)

    def close(self) -> None:
        close_all(self._watcher, self._echo, self._progress)
        if self._serving:
            self._server.remove_run(self.run)
        self._server.close()


def close_all(*parts: Any) -> None:
    """Close what a placement made (the ones it made: ``None`` for the others), in order."""
    for part in parts:
        if part is not None:
            part.close()


def quiet_log(spark: SparkSession) -> str | None:
    """On a local master the executors' streams are this terminal: the workers keep trials'
    output for the echo only, and send the rest (native libraries' start-up lines) here."""
    if _session.is_connect(spark) or not _session.is_local_master(_session.master(spark) or ""):
        return None
    path = os.path.join(tempfile.gettempdir(), f"optuna-spark-workers-{os.getpid()}.log")
    _logger.debug("The workers' output outside trials goes to %s.", path)
    return path


def server_for(spark: SparkSession, study: optuna.Study, options: CallOptions) -> StudyServer:
    """The server the workers reach the run through (not started yet)."""
    tuning = options.settings.server
    return StudyServer(
        optuna_adapter.storage_of(study),
        host=options.service_host or _session.driver_host(spark),
        port=options.service_port,
        tls_certfile=options.tls[0],
        tls_keyfile=options.tls[1],
        tick_interval=tuning.tick_interval,
        idle_timeout=tuning.idle_timeout,
        storage_grace=options.settings.storage_grace,
    )


def _job(
    spark: SparkSession,
    run: StudyRun,
    server: StudyServer,
    n_workers: int,
    func: Any,
    catch: tuple[type[Exception], ...],
    options: CallOptions,
) -> SparkJob | JobSet:
    """The Spark job whose tasks serve ``run`` (not started yet)."""
    settings = options.settings
    spec = run.worker_spec(
        dataclasses.replace(server.endpoint, tls_server_hostname=options.tls_server_hostname),
        heartbeat_interval=settings.heartbeat_interval,
        exit_if_stuck_after=settings.exit_if_stuck_after,
        gc_after_trial=options.gc_after_trial,
    )
    log = quiet_log(spark)
    return worker_jobs(
        spark,
        name=f"optuna-spark: study '{run.study.study_name}' on {n_workers} workers",
        group=f"optuna-spark-{run.run_id}",
        n_workers=n_workers,
        spec=spec,
        task_of=lambda spec: make_task(spec, func, catch, log),
        on_end=run.changes.notify,
        profile=options.profile,
        stages=options.stages,
    )
