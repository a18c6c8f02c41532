"""The client's side of ``coordinator="cluster"``: start the job, follow the run through the
study's storage, and end it as ``Study.optimize`` would (see ``_cluster_task``)."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark.coordinator._attrs import ATTR_WORKER
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.spark import _session
from optuna_spark.spark._checks import check_picklable
from optuna_spark.spark._cluster_task import ClusterSpec
from optuna_spark.spark._cluster_task import RunRecord
from optuna_spark.spark._cluster_task import make_cluster_task
from optuna_spark.spark._cluster_task import read_record
from optuna_spark.spark._cluster_task import record_error
from optuna_spark.spark._job import SparkJob
from optuna_spark.spark._progress import ProgressBar
from optuna_spark.spark._settings import RunSettings

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


class ClusterRunView:
    """What the client knows of a run served by task 0, read from the study's storage.

    It offers what the progress bar reads of a ``StudyRun`` (``study``, ``n_trials``,
    ``timeout``, ``elapsed``, ``listeners``), fed by polling.
    """

    def __init__(
        self, study: optuna.Study, call_id: str, n_trials: int | None, timeout: float | None
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
        self._seen: set[int] = set()
        self._n_finished = -1  # finished trials of the study at the last read

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def refresh(self) -> RunRecord | None:
        self.record = read_record(self._storage, self._study_id, self.call_id)
        if self.record is not None and self.record.run_id is not None and self.listeners:
            self._feed(self.record.run_id)
        return self.record

    def _feed(self, run_id: str) -> None:
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        # Reading every trial of a long study twice a second is costly on an RDB: count first.
        n_finished = self._storage.get_n_trials(self._study_id, finished)
        if n_finished == self._n_finished:
            return
        self._n_finished = n_finished
        for trial in self._storage.get_all_trials(self._study_id, deepcopy=False, states=finished):
            if trial.number in self._seen:
                continue
            if (trial.system_attrs.get(ATTR_WORKER) or {}).get("run_id") != run_id:
                continue
            self._seen.add(trial.number)
            for listener in self.listeners:
                listener(trial)

    def fail_running(self, reason: str) -> None:
        """Fail this run's trials still RUNNING (its coordinator can no longer do it)."""
        record = self.record or self.refresh()
        if record is None or record.run_id is None:
            return
        for trial in self._storage.get_all_trials(
            self._study_id, deepcopy=False, states=(TrialState.RUNNING,)
        ):
            if (trial.system_attrs.get(ATTR_WORKER) or {}).get("run_id") != record.run_id:
                continue
            trial_id = optuna_adapter.trial_id_of(trial)
            with contextlib.suppress(Exception):  # finished meanwhile
                self._storage.set_trial_system_attr(trial_id, ATTR_FAIL_REASON, reason)
                self._storage.set_trial_state_values(trial_id, TrialState.FAIL)


def cluster_job(
    spark: SparkSession,
    study: optuna.Study,
    spec_args: dict[str, Any],
    n_workers: int,
    func: Any,
    catch: tuple[type[Exception], ...],
    profile: Any = None,
) -> tuple[SparkJob, ClusterSpec]:
    """The job of ``n_workers + 1`` tasks whose task 0 serves the run."""
    spec = ClusterSpec(
        call_id=secrets.token_hex(8),
        token=secrets.token_urlsafe(32),
        study_name=study.study_name,
        storage=optuna_adapter.storage_of(study),
        sampler=study.sampler,
        pruner=study.pruner,
        n_workers=n_workers,
        **spec_args,
    )
    check_picklable(
        "coordinator='cluster' ships the study's storage, sampler, pruner and callbacks to "
        "the cluster, and one of them",
        (spec,),
        "Use coordinator='driver', or give them no open files, locks or connections.",
    )
    job = SparkJob(
        spark,
        name=f"optuna-spark: study '{study.study_name}', coordinator and {n_workers} workers",
        group=f"optuna-spark-{spec.call_id}",
        n_workers=n_workers + 1,
        task=make_cluster_task(spec, func, catch),
        profile=profile,
    )
    return job, spec


def follow(view: ClusterRunView, job: SparkJob, wind_down: float) -> None:
    """Wait for the run's end (or the job's), then raise what ``Study.optimize`` would."""
    while True:
        record = view.refresh()
        if record is not None and record.state == "done":
            break
        if job.finished:
            record = view.refresh()
            if record is not None and record.state == "done":
                break
            view.fail_running("coordinator lost: the Spark job ended")
            raise OptunaSparkError(
                f"The Spark job of study '{view.study.study_name}' ended before its "
                f"coordinator task finished the study: {job.failure_message() or 'no error'}"
            ) from job.error
        job.wait(FOLLOW_EVERY)
    if record.cancel:
        job.cancel()
        view.fail_running("stopped: the coordinator ended the run")
    else:
        job.wait(wind_down)
        if job.finished:
            job.detach()
        else:
            job.cancel()
    error = record_error(record)
    if error is not None:
        raise error


def optimize_in_cluster(
    spark: SparkSession,
    settings: RunSettings,
    n_workers: int | None,
    profile: Any,
    study: optuna.Study,
    func: Any,
    n_trials: int | None,
    timeout: float | None,
    catch: tuple[type[Exception], ...],
    callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] | None,
    gc_after_trial: bool,
    show_progress_bar: bool,
) -> None:
    """``SparkExecutor.optimize`` with the run in task 0 of the job (``coordinator="cluster"``).

    The caller has checked the study (``check_cluster_storage``) before starting Spark.
    """
    # The coordinator's task takes one slot.
    workers = n_workers or max(1, _session.default_parallelism(spark) - 1)
    if n_trials is not None:
        workers = max(1, min(workers, n_trials))
    spec_args = {
        "run_kwargs": settings.run_kwargs(n_trials, timeout, callbacks),
        "heartbeat_interval": settings.heartbeat_interval,
        "stuck_grace": settings.stuck_grace,
        "exit_if_stuck_after": settings.exit_if_stuck_after,
        "gc_after_trial": gc_after_trial,
    }
    job, spec = cluster_job(spark, study, spec_args, workers, func, catch, profile)
    view = ClusterRunView(study, spec.call_id, n_trials, timeout)
    progress = ProgressBar(view, show_progress_bar, workers)
    try:
        job.start()
        follow(view, job, settings.wind_down)
    except KeyboardInterrupt:
        job.cancel()
        view.fail_running("interrupted: KeyboardInterrupt on the client")
        raise
    finally:
        progress.close()
