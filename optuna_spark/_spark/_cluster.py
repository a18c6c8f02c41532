"""The client's side of ``coordinator="cluster"``: start the job, follow the run through the
study's storage, and end it as ``Study.optimize`` would (see ``_cluster_task``)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._attrs import ATTR_LOG
from optuna_spark._coordinator._attrs import ATTR_RUN
from optuna_spark._coordinator._attrs import ATTR_WORKER
from optuna_spark._coordinator._pool import total_trials
from optuna_spark._coordinator._trials import try_fail_trial
from optuna_spark._spark import _session
from optuna_spark._spark._checks import check_picklable
from optuna_spark._spark._cluster_task import ClusterSpec
from optuna_spark._spark._cluster_task import ClusterStudy
from optuna_spark._spark._cluster_task import RunRecord
from optuna_spark._spark._cluster_task import make_cluster_task
from optuna_spark._spark._cluster_task import read_record
from optuna_spark._spark._cluster_task import record_error
from optuna_spark._spark._echo import OutputEcho
from optuna_spark._spark._job import SparkJob
from optuna_spark._spark._on_driver import close_all
from optuna_spark._spark._pool import note_study
from optuna_spark._spark._pool_progress import PoolProgress
from optuna_spark._spark._progress import ProgressBar
from optuna_spark._spark._settings import CallOptions
from optuna_spark._spark._settings import n_workers_for
from optuna_spark._spark._supervise import interrupt
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.wire.spec import RunConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)

#: Seconds between two reads of the run's record and finished trials by the client.
FOLLOW_EVERY = 0.5


def check_cluster_storage(study: optuna.Study) -> None:
    """The cluster must reach the study's storage: an in-memory one lives in this process."""
    if isinstance(optuna_adapter.storage_of(study), InMemoryStorage):
        raise ValueError(
            "coordinator='cluster' runs the study inside the Spark cluster, which cannot reach "
            "an in-memory study in this process. Create the study on a storage the cluster "
            "reaches: an RDB URL (optuna.create_study(storage='postgresql://...')) or a "
            "JournalStorage file on storage the cluster shares."
        )


def check_cluster_options(tls_certfile: str | None, service_host: str | None) -> None:
    """Refuse what ``coordinator="cluster"`` cannot honour, rather than drop it."""
    refused = []
    if tls_certfile is not None:
        refused.append("tls_certfile (TLS is served by the driver's service only)")
    if service_host is not None:
        refused.append("service_host (the service binds where its Spark task runs)")
    if refused:
        raise ValueError(
            f"coordinator='cluster' cannot use {' or '.join(refused)}. Run the coordinator on "
            "the driver (coordinator='driver') to use them, or leave them out."
        )


class ClusterRunView:
    """What the client knows of a run served by task 0, read from the study's storage.

    It offers what the progress bar reads of a ``StudyRun`` (``study``, ``n_trials``,
    ``timeout``, ``elapsed``, ``listeners``, ``done``), fed by polling. The call's record
    lives on ``record_study`` (by default ``study``; the first study of ``optimize_many``).
    """

    def __init__(
        self,
        study: optuna.Study,
        call_id: str,
        n_trials: int | None,
        timeout: float | None,
        record_study: optuna.Study | None = None,
    ) -> None:
        self.study = study
        self.call_id = call_id
        self.n_trials = n_trials
        self.timeout = timeout
        self.listeners: list[Callable[[FrozenTrial], None]] = []
        self.record: RunRecord | None = None
        self._t0 = time.monotonic()
        self._storage = optuna_adapter.storage_of(study)
        self._study_id = optuna_adapter.study_id_of(study)
        self._record_id = optuna_adapter.study_id_of(record_study or study)
        self._seen: set[int] = set()
        self._n_finished = -1  # finished trials of the study at the last read

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    @property
    def done(self) -> bool:
        """Whether the call is over, or this study has run its ``n_trials``."""
        over = self.record is not None and self.record.state == "done"
        return over or (self.n_trials is not None and len(self._seen) >= self.n_trials)

    def read(self) -> RunRecord | None:
        """The call's record, as the storage has it now."""
        return read_record(self._storage, self._record_id, self.call_id)

    def refresh(self) -> RunRecord | None:
        return self.take(self.read())

    def take(self, record: RunRecord | None) -> RunRecord | None:
        """Keep ``record`` (read once for every study of a call) and feed the listeners."""
        self.record = record
        if self.record is not None and self.record.run_id is not None and self.listeners:
            self._feed(set(self.record.run_ids))
        return self.record

    def _feed(self, run_ids: set[str]) -> None:
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        # Reading every trial of a long study twice a second is costly on an RDB: count first.
        n_finished = self._storage.get_n_trials(self._study_id, finished)
        if n_finished == self._n_finished:
            return
        self._n_finished = n_finished
        for trial in self._storage.get_all_trials(self._study_id, deepcopy=False, states=finished):
            if trial.number in self._seen:
                continue
            if _run_of(trial) not in run_ids:
                continue
            self._seen.add(trial.number)
            for listener in self.listeners:
                listener(trial)

    def fail_running(self, reason: str) -> None:
        """Fail this run's trials still RUNNING (its coordinator can no longer do it)."""
        record = self.record or self.refresh()
        if record is None or record.run_id is None:
            return
        run_ids = set(record.run_ids)
        for trial in self._storage.get_all_trials(
            self._study_id, deepcopy=False, states=(TrialState.RUNNING,)
        ):
            if _run_of(trial) not in run_ids:
                continue
            try_fail_trial(self._storage, optuna_adapter.trial_id_of(trial), reason)


def _run_of(trial: FrozenTrial) -> str | None:
    """The run that holds (or held) ``trial``: the one that handed it to a worker last, else
    the one that created it (a trial made just before its coordinator task was lost may
    never have reached a worker)."""
    worker = trial.system_attrs.get(ATTR_WORKER) or {}
    run_id = worker.get("run_id", trial.system_attrs.get(ATTR_RUN))
    return run_id if isinstance(run_id, str) else None


def cluster_job(
    spark: SparkSession,
    studies: Sequence[tuple[optuna.Study, RunConfig]],
    options: CallOptions,
    n_workers: int,
    func: Any,
    catch: tuple[type[Exception], ...],
    pool: bool = False,
) -> tuple[SparkJob, ClusterSpec]:
    """The job of ``n_workers + 1`` tasks whose task 0 serves the run (with ``pool``, the
    runs of every study, and ``func`` maps each study's name to its objective)."""
    settings = options.settings
    spec = ClusterSpec(
        call_id=secrets.token_hex(8),
        token=secrets.token_urlsafe(32),
        storage=optuna_adapter.storage_of(studies[0][0]),
        studies=tuple(
            ClusterStudy(study.study_name, study.sampler, study.pruner, config)
            for study, config in studies
        ),
        n_workers=n_workers,
        heartbeat_interval=settings.heartbeat_interval,
        stuck_grace=settings.stuck_grace,
        exit_if_stuck_after=settings.exit_if_stuck_after,
        gc_after_trial=options.gc_after_trial,
        service_port=options.service_port,
        pool=pool,
    )
    check_picklable(
        "coordinator='cluster' ships the studies' storage, samplers, pruners and callbacks to "
        "the cluster; what it ships",
        {"storage": spec.storage, "studies": spec.studies, "spec": spec},
        "Use coordinator='driver', or give them no open files, locks or connections.",
    )
    what = f"study '{studies[0][0].study_name}'" if not pool else f"{len(studies)} studies"
    job = SparkJob(
        spark,
        name=f"optuna-spark: {what}, coordinator and {n_workers} workers",
        group=f"optuna-spark-{spec.call_id}",
        n_workers=n_workers + 1,
        task=make_cluster_task(spec, func, catch),
        profile=options.profile,
    )
    return job, spec


def follow(
    views: Sequence[ClusterRunView], job: SparkJob, wind_down: float, what: str
) -> RunRecord:
    """Wait for the call's end (or the job's), then end the job as ``Study.optimize`` would;
    returns the call's last record (its error is the caller's to raise)."""
    every = FOLLOW_EVERY * max(1.0, len(views) / 10)  # each read costs each study a query
    while True:
        record = _take(views)
        if record is not None and record.state == "done":
            break
        if job.finished:
            record = _take(views)
            if record is not None and record.state == "done":
                break
            for view in views:
                view.fail_running("coordinator lost: the Spark job ended")
            raise OptunaSparkError(
                f"The Spark job of {what} ended before its coordinator task finished: "
                f"{job.failure_message() or 'no error'}"
            ) from job.error
        job.wait(every)
    if record.cancel:
        job.cancel()
        for view in views:
            view.fail_running("stopped: the coordinator ended the run")
    else:
        job.wait(wind_down)
        if job.finished:
            job.detach()
        else:
            job.cancel()
    return record


def _take(views: Sequence[ClusterRunView]) -> RunRecord | None:
    record = views[0].read()
    for view in views:
        view.take(record)
    return record


def echo_trial_log(echo: Callable[[int, str], None]) -> Callable[[FrozenTrial], None]:
    """A listener that echoes what each finished trial printed (the part kept on it): the
    cluster's workers cannot reach this process while they run."""

    def listener(trial: FrozenTrial) -> None:
        text = trial.system_attrs.get(ATTR_LOG)
        if isinstance(text, str) and text:
            echo(trial.number, text if text.endswith("\n") else text + "\n")

    return listener


class ClusterPlacement:
    """``SparkExecutor.optimize`` with the run in task 0 of the job (``coordinator="cluster"``,
    a :class:`Placement`). The caller has checked the study (``check_cluster_storage``)."""

    side = "client"

    def __init__(
        self,
        spark: SparkSession,
        options: CallOptions,
        study: optuna.Study,
        config: RunConfig,
        func: Any,
        catch: tuple[type[Exception], ...],
    ) -> None:
        self._options = options
        # The coordinator's task takes one slot.
        slots = max(1, _session.default_parallelism(spark) - 1)
        self.n_workers = n_workers_for(options.n_workers, slots, config.n_trials)
        self._job, spec = cluster_job(
            spark, [(study, config)], options, self.n_workers, func, catch
        )
        self.view = ClusterRunView(study, spec.call_id, config.n_trials, config.timeout)
        self._progress: ProgressBar | None = None
        self._echo: OutputEcho | None = None

    def start(self) -> None:
        if self._options.log_to_driver:
            self._echo = OutputEcho()
            self.view.listeners.append(echo_trial_log(self._echo))
        self._progress = ProgressBar(
            self.view, bool(self._options.show_progress_bar), self.n_workers
        )
        self._job.start()

    def follow(self) -> None:
        what = f"study '{self.view.study.study_name}'"
        record = follow([self.view], self._job, self._options.settings.wind_down, what)
        error = record_error(record)
        if error is not None:
            raise error

    def interrupt(self, reason: str) -> None:
        interrupt(self.view, self._job, reason)

    def close(self) -> None:
        close_all(self._echo, self._progress)


class ClusterPool:
    """What the client knows of the studies of one ``optimize_many`` call served by task 0
    (a ``PoolView`` for the progress bar)."""

    def __init__(self, runs: list[ClusterRunView]) -> None:
        self.runs = runs

    @property
    def n_trials(self) -> int | None:
        """Trials of all studies together, if each study has an ``n_trials``."""
        return total_trials(run.n_trials for run in self.runs)

    def fail_running(self, reason: str) -> None:
        for run in self.runs:
            run.fail_running(reason)


class ClusterPoolPlacement:
    """``SparkExecutor.optimize_many`` with the studies' runs in task 0 of the job
    (``coordinator="cluster"``, a ``Placement``)."""

    side = "client"

    def __init__(
        self,
        spark: SparkSession,
        options: CallOptions,
        studies: list[tuple[optuna.Study, RunConfig]],
        funcs: Mapping[str, Any],
        catch: tuple[type[Exception], ...],
    ) -> None:
        self._options = options
        slots = max(1, _session.default_parallelism(spark) - 1)  # task 0 takes one
        n_trials = total_trials(config.n_trials for _, config in studies)
        self.n_workers = n_workers_for(options.n_workers, slots, n_trials)
        self._job, spec = cluster_job(
            spark, studies, options, self.n_workers, dict(funcs), catch, pool=True
        )
        first = studies[0][0]
        self.pool = ClusterPool(
            [ClusterRunView(s, spec.call_id, c.n_trials, c.timeout, first) for s, c in studies]
        )
        self._progress: PoolProgress | None = None
        self._echo: OutputEcho | None = None

    def start(self) -> None:
        if self._options.log_to_driver:
            self._echo = OutputEcho()
            for view in self.pool.runs:
                echo = self._echo.of_study(view.study.study_name)
                view.listeners.append(echo_trial_log(echo))
        bar = self._options.show_progress_bar
        self._progress = PoolProgress(
            self.pool, bool(bar), self.n_workers, per_study=bar == "studies"
        )
        self._job.start()

    def follow(self) -> None:
        what = f"{len(self.pool.runs)} studies"
        record = follow(self.pool.runs, self._job, self._options.settings.wind_down, what)
        error = record_error(record)
        if error is not None:
            note_study(error, record.error_study or self.pool.runs[0].study.study_name)
            raise error

    def interrupt(self, reason: str) -> None:
        interrupt(self.pool, self._job, reason)

    def close(self) -> None:
        close_all(self._echo, self._progress)
