"""``SparkExecutor``: ``Study.optimize`` on long-running Spark tasks."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import optuna

from optuna_spark._coordinator._pool import total_trials
from optuna_spark._coordinator._sampling_placement import check_sampling
from optuna_spark._spark import _coordinator_placement as placement
from optuna_spark._spark import _session
from optuna_spark._spark._checks import SAMPLER_HINT
from optuna_spark._spark._checks import check_optimize_args
from optuna_spark._spark._checks import check_picklable
from optuna_spark._spark._checks import check_storage_answers
from optuna_spark._spark._checks import check_tls
from optuna_spark._spark._checks import warn_if_no_task_retries
from optuna_spark._spark._cluster import ClusterPlacement
from optuna_spark._spark._cluster import ClusterPoolPlacement
from optuna_spark._spark._cluster import check_cluster_options
from optuna_spark._spark._cluster import check_cluster_storage
from optuna_spark._spark._coordinator_placement import Coordinator
from optuna_spark._spark._many import check_bar
from optuna_spark._spark._many import on_one_storage
from optuna_spark._spark._many import per_study
from optuna_spark._spark._many import split_studies
from optuna_spark._spark._many import with_limits
from optuna_spark._spark._on_driver import DriverPlacement
from optuna_spark._spark._pool import PoolPlacement
from optuna_spark._spark._resources import TrialResources
from optuna_spark._spark._resources import check_by_trial
from optuna_spark._spark._resources import check_resources
from optuna_spark._spark._resources import task_profile
from optuna_spark._spark._settings import CallOptions
from optuna_spark._spark._settings import RunSettings
from optuna_spark._spark._stages import profile_choice
from optuna_spark._spark._stages import stages_for
from optuna_spark._spark._supervise import run_placement
from optuna_spark._validate import check_positive
from optuna_spark.checkpoint._api import default_store
from optuna_spark.wire.spec import Callback
from optuna_spark.wire.spec import ProfileChoice
from optuna_spark.wire.spec import RunConfig
from optuna_spark.wire.spec import Sampling
from optuna_spark.wire.spec import check_resume_lost_trials
from optuna_spark.wire.spec import check_sampling_place

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
            driver lives (``spark.driver.host``; the loopback address in local mode). Not
            with ``coordinator="cluster"`` (the service binds where its task runs).
        service_port: Port of the service; ``0`` picks a free one. Fix it for clusters behind
            a firewall (with ``coordinator="cluster"``, the port in the coordinator's task).
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
        retry_lost_trials: Run the parameters of a trial whose worker was lost once more, as a
            new trial (once its resumes are used up, if any).
        resume_lost_trials: How many times a trial whose worker was lost (process killed,
            executor lost or decommissioned, heartbeats missed, its driver killed) resumes:
            it stays RUNNING with its number, parameters and reports, and the next free
            worker runs the objective again for it before any new trial;
            :func:`optuna_spark.checkpoint.load` then returns its last checkpoint. A trial a
            dead driver left with a checkpoint resumes in the next ``optimize`` of the study
            (not counted in its ``n_trials``). ``0`` (the default): a lost trial fails.
        checkpoint_store: The Optuna artifact store :mod:`optuna_spark.checkpoint` saves to
            (``FileSystemArtifactStore`` on a path every executor and the driver share,
            ``Boto3ArtifactStore``, ``GCSArtifactStore``). ``None``: on an embedded or other
            local-mode session, :data:`optuna_spark.checkpoint.DEFAULT_DIR`; on a cluster,
            saving a checkpoint raises :class:`~optuna_spark.CheckpointError`.
        keep_checkpoints: Keep each finished trial's last checkpoint (by default it is
            removed once the trial's end is recorded).
        storage_grace: Seconds the study rides out a storage that fails transiently (a
            database restarting or failing over, its connections refused or closed, a locked
            SQLite file): the driver retries with backoff, workers keep training (reports
            wait on the driver, pruning questions answer "go on"), and trials' ends are
            written when it is back. Past it, ``optimize`` raises ``StorageUnavailableError``
            and fails the trials it held once it can. ``0``: the first error stops the study.
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
            the trial. A fraction shares a GPU: ``{"gpus": 0.25}`` runs four trials on each.
            Or a :class:`~optuna_spark.TrialResources`: a few named profiles, each trial run
            under the one its parameters call for. Needs a standalone, YARN or Kubernetes
            cluster (not local mode).
        log_to_driver: Echo what objectives print and log on the workers here, each line
            prefixed with its trial's number (above the progress bar); with
            ``coordinator="cluster"``, each trial's kept output once it has finished. Either
            way the last 64 KiB of each trial's output is kept on the trial
            (:func:`get_trial_log`).
        log_artifact_store: An Optuna artifact store (e.g. ``FileSystemArtifactStore`` on a
            path the driver can write): each trial's whole output (up to 1 MiB) becomes its
            artifact ``trial-<number>.log``, shown by optuna-dashboard.
        tls_certfile: Serve the driver's service over TLS with this PEM certificate (checked
            when the executor is made). Not with ``coordinator="cluster"``, whose service
            runs in a Spark task: that is refused.
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

    def __init__(  # long: checks and keeps every documented argument
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
        resume_lost_trials: int = 0,
        checkpoint_store: Any = None,
        keep_checkpoints: bool = False,
        storage_grace: float = 60.0,
        sampling: Sampling = "driver",
        coordinator: Coordinator = "auto",
        resources: Mapping[str, float] | TrialResources | None = None,
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
        check_resume_lost_trials(resume_lost_trials)
        check_positive("storage_grace", storage_grace, allow_zero=True)
        check_sampling_place(sampling)
        placement.check_coordinator(coordinator)
        if heartbeat_interval <= 0 or heartbeat_grace <= heartbeat_interval:
            raise ValueError(
                "heartbeat_grace must be longer than heartbeat_interval (both positive), but "
                f"got {heartbeat_interval=} and {heartbeat_grace=}."
            )
        check_tls(tls_certfile, tls_keyfile)
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
            resume_lost_trials=resume_lost_trials,
            checkpoint_store=checkpoint_store,
            keep_checkpoints=keep_checkpoints,
            storage_grace=storage_grace,
            sampling=sampling,
            log_artifact_store=log_artifact_store,
        )
        self._coordinator = coordinator
        self._probed: dict[tuple[int, str], bool] = {}  # "auto"'s answers, per session
        self._by_trial: TrialResources | None = None
        self._resources: dict[str, float] | None = None
        if isinstance(resources, TrialResources):
            check_by_trial(sampling, coordinator)
            self._by_trial = resources
        else:
            self._resources = check_resources(resources)
        self._log_to_driver = log_to_driver
        self._tls = (tls_certfile, tls_keyfile)
        self._tls_server_hostname = tls_server_hostname
        if coordinator == "cluster":
            check_cluster_options(self._tls[0], self._service_host)

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
        callbacks: Iterable[Callback] | None = None,
        gc_after_trial: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        """Optimize ``study`` with ``func`` on Spark, with ``Study.optimize``'s contract.

        It returns when ``n_trials`` trials have been run by this call, ``timeout`` seconds
        have passed, ``study.stop()`` was called (from a callback or an objective), or the
        sampler is exhausted; with none of those it runs until one of them happens.

        Everything is checked before anything starts: bad arguments fail with no Spark
        session started and nothing written to the study.

        Args:
            study: The study to optimize; any sampler, pruner and storage.
            func: The objective. It runs in Spark tasks, called with a trial that behaves as
                ``optuna.Trial``; it is shipped by Spark, so it must be picklable.
            n_trials: How many trials this call runs.
            timeout: Seconds after which no new trial starts.
            catch: Exception types that fail a trial without stopping the study.
            callbacks: ``callback(study, frozen_trial)``, run on the driver after each trial,
                in the order the trials finished, on a thread of their own (a slow callback
                never holds up a worker); all have run when ``optimize`` returns.
            gc_after_trial: Run ``gc.collect()`` on the worker after each trial (as
                ``Study.optimize``), for objectives that leave reference cycles behind.
            show_progress_bar: Show a tqdm bar with finished, pruned and failed trials and the
                best value.

        Raises:
            Exception: The objective's own uncaught exception (same type for built-in and
                Optuna exception types, else :class:`~optuna_spark.RemoteError`), with the
                worker's traceback as its ``__cause__``.
            KeyboardInterrupt: After failing the running trials and cancelling the Spark job.
        """
        config = self._check(study, func, n_trials, timeout, catch, callbacks)
        if n_trials == 0:
            return  # nothing to run: no session, no service, nothing written
        where = self._check_placement(study)
        spark = self.spark
        options = self._call_options(spark, gc_after_trial, show_progress_bar, config.n_trials)
        config = _for_call(spark, config, profile_choice(self._by_trial, options))
        if where == "driver":
            warn_if_no_task_retries(spark)
        place = ClusterPlacement if where == "cluster" else DriverPlacement
        run_placement(place(spark, options, study, config, func, catch))

    def optimize_many(
        self,
        studies: Sequence[optuna.Study | tuple[optuna.Study, ObjectiveFuncType]],
        func: ObjectiveFuncType | None = None,
        *,
        n_trials: Mapping[str, int | None] | int | None = None,
        timeout: Mapping[str, float | None] | float | None = None,
        max_concurrent_trials: int | None = None,
        catch: tuple[type[Exception], ...] = (),
        callbacks: Iterable[Callback] | None = None,
        gc_after_trial: bool = False,
        show_progress_bar: bool | Literal["studies"] = False,
    ) -> None:
        """Optimize many studies at once on one Spark job and one pool of workers.

        Each worker takes its next trial from the study with the fewest trials in flight
        (then the fewest started), so that every study progresses at the same pace and no
        slot idles while any study has work left. Each study keeps its own sampler, pruner,
        ``n_trials`` and ``timeout``; the callbacks run for every study, with that study.
        With ``coordinator="cluster"`` task 0 of the job serves every study's run.

        Args:
            studies: The studies, with one objective ``func`` for all (it can tell them apart
                by ``trial.study.study_name``), or ``(study, objective)`` pairs without
                ``func``. All on one storage (one storage object, or one database URL).
            func: The objective of every study, or ``None`` with pairs.
            n_trials: Trials per study; a mapping by study name sets each study's own (a
                study it does not name has no limit).
            timeout: Seconds per study after which it starts no new trial; a mapping by
                study name, as ``n_trials``.
            max_concurrent_trials: Trials of one study in flight at once (``None``: no
                limit). ``1`` lets an adaptive sampler (TPE) learn from every result of its
                study before its next trial, as in a sequential ``study.optimize``.
            catch: Exception types that fail a trial without stopping its study.
            callbacks: ``callback(study, frozen_trial)`` after each trial of any study.
            gc_after_trial: Run ``gc.collect()`` on the worker after each trial.
            show_progress_bar: One bar over the trials of all studies, with the studies done;
                ``"studies"``: also a line per study below it, with its trials and best
                value (for a handful of studies: one terminal line each).

        Raises:
            Exception: An objective's uncaught exception stops its own study only; the others
                run to their end, then the first such exception is raised, with a note
                naming its study (the others are logged).

        Example:

            .. code-block:: python

                import optuna
                from optuna_spark import SparkExecutor

                storage = optuna.storages.InMemoryStorage()
                studies = [
                    optuna.create_study(study_name=f"store-{i}", storage=storage)
                    for i in range(3)
                ]


                def objective(trial):
                    store = int(trial.study.study_name.split("-")[1])
                    x = trial.suggest_float("x", -10, 10)
                    return (x - store) ** 2


                SparkExecutor(n_workers=2).optimize_many(studies, objective, n_trials=10)
                print([s.best_params for s in studies])
        """
        check_bar(show_progress_bar)
        chosen, funcs = split_studies(studies, func)
        names = [study.study_name for study in chosen]
        n_trials_of = per_study("n_trials", n_trials, names)
        timeout_of = per_study("timeout", timeout, names)
        configs, pickled = {}, set()
        for study in chosen:
            name = study.study_name
            objective = funcs[name]
            config = self._check(
                study, objective, None, None, catch, callbacks, id(objective) not in pickled
            )
            pickled.add(id(objective))
            configs[name] = with_limits(
                config, n_trials_of[name], timeout_of[name], max_concurrent_trials
            )
        chosen = [s for s in on_one_storage(chosen) if configs[s.study_name].n_trials != 0]
        if not chosen:
            return  # nothing to run: no session, no service, nothing written
        where = self._check_placement(chosen[0])
        spark = self.spark
        n_total = total_trials(configs[s.study_name].n_trials for s in chosen)
        options = self._call_options(spark, gc_after_trial, show_progress_bar, n_total)
        choice = profile_choice(self._by_trial, options)
        pairs = [(s, _for_call(spark, configs[s.study_name], choice)) for s in chosen]
        if where == "driver":
            warn_if_no_task_retries(spark)
        place = ClusterPoolPlacement if where == "cluster" else PoolPlacement
        run_placement(place(spark, options, pairs, funcs, catch))

    # -----------------------------------------------------------------------------------------
    # Checks, before anything starts.

    def _check(
        self,
        study: optuna.Study,
        func: ObjectiveFuncType,
        n_trials: int | None,
        timeout: float | None,
        catch: tuple[type[Exception], ...],
        callbacks: Iterable[Callback] | None,
        pickle_func: bool = True,
    ) -> RunConfig:
        """Check the call's arguments; returns the run's config."""
        check_optimize_args(study, func, catch, pickle_func)
        config = self._settings.run_config(n_trials, timeout, callbacks)
        check_sampling(config.sampling, study.sampler)
        if config.sampling == "workers":
            check_picklable(
                "The study's sampler and pruner",
                {"sampler": study.sampler, "pruner": study.pruner},
                SAMPLER_HINT,
            )
        if self._coordinator == "cluster":
            check_cluster_storage(study)
        check_storage_answers(study)
        return config

    def _check_placement(self, study: optuna.Study) -> Literal["driver", "cluster"]:
        """Where the coordinator of a call on ``study`` lives, refusing what it cannot do."""
        where = self._resolve_coordinator(study)
        if where == "cluster":
            check_cluster_options(self._tls[0], self._service_host)
            if self._by_trial is not None:
                check_by_trial(self._settings.sampling, where)
        return where

    def _resolve_coordinator(self, study: optuna.Study) -> Literal["driver", "cluster"]:
        """Where the coordinator of a call on ``study`` lives (``"auto"`` decided)."""
        spark_now = self._spark or _session.active_session()  # never starts one
        return placement.resolve(
            self._coordinator, spark_now, study, self._service_host, self._probed
        )

    def _call_options(
        self,
        spark: SparkSession,
        gc_after_trial: bool,
        show_progress_bar: bool | str,
        n_trials: int | None,
    ) -> CallOptions:
        return CallOptions(
            settings=self._settings,
            n_workers=self._n_workers,
            profile=self._profile(spark),
            service_host=self._service_host,
            service_port=self._service_port,
            tls=self._tls,
            tls_server_hostname=self._tls_server_hostname,
            log_to_driver=self._log_to_driver,
            gc_after_trial=gc_after_trial,
            show_progress_bar=show_progress_bar,
            stages=stages_for(spark, self._by_trial, self._n_workers, n_trials),
        )

    def _profile(self, spark: SparkSession) -> Any:
        """The tasks' ``ResourceProfile`` when ``resources`` were given."""
        return None if self._resources is None else task_profile(spark, self._resources)


def _for_call(spark: SparkSession, config: RunConfig, profiles: ProfileChoice | None) -> RunConfig:
    """``config`` with the call's resource profiles; on a local-mode session (executors on
    this machine), with checkpoints in this machine's default directory unless a store was
    given."""
    local = not _session.is_connect(spark) and _session.is_local_master(
        _session.master(spark) or ""
    )
    store = config.checkpoint_store
    if store is None and local:
        store = default_store()
    return dataclasses.replace(config, checkpoint_store=store, profiles=profiles)
