"""``SparkExecutor``: ``Study.optimize`` on long-running Spark tasks."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._validate import check_positive
from optuna_spark.coordinator import StopReason
from optuna_spark.coordinator import StudyRun
from optuna_spark.coordinator import StudyServer
from optuna_spark.coordinator._placement import SAMPLING_PLACES
from optuna_spark.coordinator._placement import Sampling
from optuna_spark.coordinator._placement import check_sampling
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.spark import _placement
from optuna_spark.spark import _session
from optuna_spark.spark._checks import SAMPLER_HINT
from optuna_spark.spark._checks import check_optimize_args
from optuna_spark.spark._checks import check_picklable
from optuna_spark.spark._checks import warn_if_no_task_retries
from optuna_spark.spark._cluster import check_cluster_storage
from optuna_spark.spark._cluster import optimize_in_cluster
from optuna_spark.spark._echo import OutputEcho
from optuna_spark.spark._job import SparkJob
from optuna_spark.spark._placement import COORDINATOR_PLACES
from optuna_spark.spark._placement import Coordinator
from optuna_spark.spark._progress import ProgressBar
from optuna_spark.spark._resources import check_resources
from optuna_spark.spark._resources import task_profile
from optuna_spark.spark._settings import RunSettings
from optuna_spark.spark._supervise import supervise
from optuna_spark.worker._spark_task import make_task

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)

ObjectiveFuncType = Callable[[optuna.trial.BaseTrial], Any]


class SparkExecutor:
    """Runs ``optuna.Study.optimize`` on Spark: one job whose tasks live for the whole study.

    Each of the ``n_workers`` tasks connects back to a service on the driver and keeps asking
    it for the next trial. The study's sampler and pruner run on the driver, once, with every
    worker's results in view; any Optuna sampler, pruner and storage works unchanged.

    Args:
        spark: The session to run on. ``None`` uses the active session, or starts an embedded
            local one (``local[n_workers, retries]``, executors on this interpreter).
        n_workers: Concurrent trials (Spark tasks). Defaults to the session's
            ``defaultParallelism``, capped by ``n_trials``.
        service_host: Address the driver's service binds to. Defaults to where Spark says the
            driver lives (``spark.driver.host``; the loopback address in local mode).
        service_port: Port of the service; ``0`` picks a free one. Fix it for clusters behind
            a firewall.
        heartbeat_interval: Seconds between a busy worker's heartbeats.
        heartbeat_grace: Seconds without a heartbeat after which a running trial is failed as
            "worker lost".
        trial_timeout: Seconds a trial may run; a longer one is failed with reason "timeout",
            and its worker process is ended (Spark then retries the task, which continues
            with the next trial) when the objective still has not returned
            ``stuck_grace`` seconds later.
        stuck_grace: See ``trial_timeout``. Also how long trials still running after another
            trial's uncaught exception have to stop by themselves before they are failed and
            the job is cancelled.
        stop_running_trials: When the study stops early (timeout, ``study.stop()``, an error,
            Ctrl-C), running trials learn it at their next ``should_prune`` (it answers
            ``True``) so that ``optimize`` returns promptly.
        retry_lost_trials: Run the parameters of a trial whose worker was lost once more.
        sampling: Where parameters are sampled. ``"driver"`` (the default): by the study's
            sampler on the driver, one suggestion at a time, with every trial in view.
            ``"workers"``: each worker samples with its own copy of the sampler (reseeded),
            reading the study (running trials included, for TPE's constant liar) from the
            driver; use it when the sampler's cost on the driver limits throughput (many
            workers, short trials, an expensive sampler). The driver still creates and
            numbers trials, prunes, runs callbacks and keeps ``n_trials`` and ``timeout``.
            ``GridSampler``, ``BruteForceSampler`` and ``LOCOSampler`` are refused there.
        coordinator: Where the run (sampler, pruner, callbacks) and its service live.
            ``"driver"``: in this process; executors connect to it. ``"cluster"``: in a task
            of the job itself (one extra task), for Spark Connect clients that executors
            cannot reach (serverless compute, a laptop); the study's storage must then be
            reachable from the cluster (an RDB URL or a journal file on shared storage), and
            callbacks run in the cluster (they must pickle). ``"auto"`` (the default):
            ``"driver"`` on classic sessions; on Spark Connect, ``"driver"`` when a probe
            task reaches this process's service within a few seconds, else ``"cluster"``.
        resources: What each trial's task needs, e.g. ``{"cpus": 4, "gpus": 1}`` (any other
            name is a custom Spark resource): the job runs under a Spark ``ResourceProfile``
            (stage-level scheduling), so each trial gets those cores and GPUs whatever the
            session's defaults. GPUs are exposed as ``CUDA_VISIBLE_DEVICES`` and recorded on
            the trial. Needs a standalone, YARN or Kubernetes cluster (not local mode).
        log_to_driver: Echo what objectives print and log on the workers here, each line
            prefixed with its trial's number (above the progress bar). Either way the last
            64 KiB of each trial's output is kept on the trial (:func:`get_trial_log`).
        log_artifact_store: An Optuna artifact store (e.g. ``FileSystemArtifactStore`` on a
            path the driver can write): each trial's whole output (up to 1 MiB) becomes its
            artifact ``trial-<number>.log``, shown by optuna-dashboard.
        tls_certfile: Serve the driver's service over TLS with this PEM certificate.
        tls_keyfile: Key of ``tls_certfile`` when it is a separate file.
        tls_server_hostname: The name workers check the certificate against (default: the
            address they connect to, which the certificate must then name).

    Example:

        .. code-block:: python

            import optuna
            from optuna_spark import SparkExecutor


            def objective(trial):
                x = trial.suggest_float("x", -10, 10)
                return (x - 2) ** 2


            study = optuna.create_study()
            SparkExecutor(n_workers=2).optimize(study, objective, n_trials=20)
            print(study.best_params)
    """

    def __init__(
        self,
        spark: SparkSession | None = None,
        *,
        n_workers: int | None = None,
        service_host: str | None = None,
        service_port: int = 0,
        heartbeat_interval: float = 5.0,
        heartbeat_grace: float = 60.0,
        trial_timeout: float | None = None,
        stuck_grace: float = 30.0,
        stop_running_trials: bool = True,
        retry_lost_trials: bool = False,
        sampling: Sampling = "driver",
        coordinator: Coordinator = "auto",
        resources: Mapping[str, float] | None = None,
        log_to_driver: bool = True,
        log_artifact_store: Any = None,
        tls_certfile: str | None = None,
        tls_keyfile: str | None = None,
        tls_server_hostname: str | None = None,
    ) -> None:
        if n_workers is not None and (
            isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1
        ):
            raise ValueError(f"n_workers must be a positive int or None, but got {n_workers=}.")
        check_positive("trial_timeout", trial_timeout)
        check_positive("stuck_grace", stuck_grace)
        if sampling not in SAMPLING_PLACES:
            raise ValueError(f"sampling must be 'driver' or 'workers', but got {sampling!r}.")
        if coordinator not in COORDINATOR_PLACES:
            raise ValueError(
                f"coordinator must be 'driver', 'cluster' or 'auto', but got {coordinator!r}."
            )
        if heartbeat_interval <= 0 or heartbeat_grace <= heartbeat_interval:
            raise ValueError(
                "heartbeat_grace must be longer than heartbeat_interval (both positive), but "
                f"got {heartbeat_interval=} and {heartbeat_grace=}."
            )
        self._spark = spark
        self._n_workers = n_workers
        self._service_host = service_host
        self._service_port = service_port
        self._settings = RunSettings(
            heartbeat_interval=heartbeat_interval,
            heartbeat_grace=heartbeat_grace,
            trial_timeout=trial_timeout,
            stuck_grace=stuck_grace,
            stop_running_trials=stop_running_trials,
            retry_lost_trials=retry_lost_trials,
            sampling=sampling,
            log_artifact_store=log_artifact_store,
        )
        self._coordinator = coordinator
        self._probed: dict[tuple[int, str], bool] = {}  # "auto"'s answers, per session
        self._resources = check_resources(resources)
        self._log_to_driver = log_to_driver
        self._tls = (tls_certfile, tls_keyfile)
        self._tls_server_hostname = tls_server_hostname

    @property
    def spark(self) -> SparkSession:
        """The session trials run on (started on first use when none was given)."""
        if self._spark is None:
            self._spark = _session.active_session() or _session.embedded_session(
                self._n_workers or os.cpu_count() or 1
            )
        return self._spark

    def optimize(
        self,
        study: optuna.Study,
        func: ObjectiveFuncType,
        n_trials: int | None = None,
        timeout: float | None = None,
        catch: tuple[type[Exception], ...] = (),
        callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] | None = None,
        gc_after_trial: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        """Optimize ``study`` with ``func`` on Spark, with ``Study.optimize``'s contract.

        It returns when ``n_trials`` trials have been run by this call, ``timeout`` seconds
        have passed, ``study.stop()`` was called (from a callback or an objective), or the
        sampler is exhausted; with none of those it runs until one of them happens.

        Args:
            study: The study to optimize; any sampler, pruner and storage.
            func: The objective. It runs in Spark tasks, called with a trial that behaves as
                ``optuna.Trial``; it is shipped by Spark, so it must be picklable.
            n_trials: How many trials this call runs.
            timeout: Seconds after which no new trial starts.
            catch: Exception types that fail a trial without stopping the study.
            callbacks: ``callback(study, frozen_trial)``, run on the driver after each trial.
            gc_after_trial: Run ``gc.collect()`` on the worker after each trial (as
                ``Study.optimize``), for objectives that leave reference cycles behind.
            show_progress_bar: Show a tqdm bar with finished, pruned and failed trials and the
                best value.

        Raises:
            Exception: The objective's own uncaught exception (same type for built-in and
                Optuna exception types, else :class:`~optuna_spark.RemoteError`), with the
                worker's traceback as its ``__cause__``.
            KeyboardInterrupt: After cancelling the Spark job and failing running trials.
        """
        check_optimize_args(study, func, n_trials, timeout, catch)
        settings = self._settings
        check_sampling(settings.sampling, study.sampler)
        if settings.sampling == "workers":
            check_picklable(
                "The study's sampler and pruner", (study.sampler, study.pruner), SAMPLER_HINT
            )
        if n_trials == 0:
            return  # nothing to run: no session, no service, nothing written
        if self._coordinator == "cluster":
            check_cluster_storage(study)
        spark_now = self._spark or _session.active_session()  # never starts one
        placement = _placement.resolve(
            self._coordinator, spark_now, study, self._service_host, self._probed
        )
        if placement == "cluster":
            spark = self.spark
            optimize_in_cluster(
                spark,
                settings,
                self._n_workers,
                self._profile(spark),
                study,
                func,
                n_trials,
                timeout,
                catch,
                callbacks,
                gc_after_trial,
                show_progress_bar,
            )
            return

        # The run reads and writes the study first: a storage that cannot be reached fails
        # here, before Spark starts.
        run = StudyRun(study, **settings.run_kwargs(n_trials, timeout, callbacks))
        echo = OutputEcho() if self._log_to_driver else None
        if echo is not None:
            run.output_listeners.append(echo)
        spark, profile = self._session_for(run)
        n_workers = self._n_workers or _session.default_parallelism(spark)
        if n_trials is not None:
            n_workers = max(1, min(n_workers, n_trials))
        server = self._server(spark, study)
        progress = ProgressBar(run, show_progress_bar, n_workers)
        with server:
            server.add_run(run)
            job = self._job(
                spark, study, run, server, n_workers, func, catch, profile, gc_after_trial
            )
            try:
                job.start()
                job_ended_early = supervise(
                    run,
                    job,
                    n_workers=n_workers,
                    stuck_grace=settings.stuck_grace,
                    stop_running_trials=settings.stop_running_trials,
                    wind_down=settings.wind_down,
                )
            except KeyboardInterrupt:
                # Fail the running trials before cancelling, so that their reason is the
                # interruption and not the workers' lost connections.
                run.stop(StopReason.INTERRUPTED)
                run.fail_running("interrupted: KeyboardInterrupt on the driver")
                job.cancel()
                raise
            finally:
                if echo is not None:
                    echo.close()
                progress.close()
                server.remove_run(run)
        if run.error is not None:
            raise run.error
        if job_ended_early and job.error is not None:
            raise OptunaSparkError(
                f"The Spark job of study '{study.study_name}' failed before the study was "
                f"over ({run.n_finished} trials finished): {job.failure_message()}"
            ) from job.error

    def _profile(self, spark: SparkSession) -> Any:
        """The tasks' ``ResourceProfile`` when ``resources`` were given."""
        return None if self._resources is None else task_profile(spark, self._resources)

    def _session_for(self, run: StudyRun) -> tuple[SparkSession, Any]:
        """The session (started now if needed) and the tasks' resource profile; if either
        cannot be had, ``run`` ends unstarted."""
        try:
            spark = self.spark
            warn_if_no_task_retries(spark)
            profile = self._profile(spark)
        except BaseException:
            run.stop(StopReason.INTERRUPTED)  # nothing ran: its lease says it is over
            raise
        return spark, profile

    def _server(self, spark: SparkSession, study: optuna.Study) -> StudyServer:
        """The server the workers reach the run through (not started yet)."""
        return StudyServer(
            optuna_adapter.storage_of(study),
            host=self._service_host or _session.driver_host(spark),
            port=self._service_port,
            tls_certfile=self._tls[0],
            tls_keyfile=self._tls[1],
            heartbeat_interval=min(1.0, self._settings.heartbeat_interval),
            idle_timeout=max(300.0, 4 * self._settings.heartbeat_interval),
        )

    def _job(
        self,
        spark: SparkSession,
        study: optuna.Study,
        run: StudyRun,
        server: StudyServer,
        n_workers: int,
        func: ObjectiveFuncType,
        catch: tuple[type[Exception], ...],
        profile: Any,
        gc_after_trial: bool,
    ) -> SparkJob:
        """The Spark job whose tasks serve ``run`` (not started yet)."""
        spec = run.worker_spec(
            dataclasses.replace(server.endpoint, tls_server_hostname=self._tls_server_hostname),
            heartbeat_interval=self._settings.heartbeat_interval,
            exit_if_stuck_after=self._settings.exit_if_stuck_after,
            gc_after_trial=gc_after_trial,
        )
        return SparkJob(
            spark,
            name=f"optuna-spark: study '{study.study_name}' on {n_workers} workers",
            group=f"optuna-spark-{run.run_id}",
            n_workers=n_workers,
            task=make_task(spec, func, catch),
            on_end=run.changes.notify,
            profile=profile,
        )
