"""The single Spark job of ``n_workers`` long-running tasks, run from a background thread.

On a classic session it is ``parallelize(range(n)).mapPartitions(task)`` in a job group; on a
Spark Connect session (no RDDs, no ``SparkContext``) it is ``spark.range(n)`` with one row
per partition, ``mapInArrow`` over it, under an operation tag. Either way each task runs
the worker loop once and the job is cancelled as a whole.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

from optuna_spark._spark._session import is_connect

_logger = logging.getLogger(__name__)

#: Seconds :meth:`SparkJob.cancel` waits for Spark to end the job before it returns anyway.
CANCEL_WAIT = 60.0


class SparkJob:
    """One Spark job whose ``n_workers`` tasks each run ``task`` (a worker loop).

    Args:
        spark: The session to run on.
        name: What the job is called in Spark's UI.
        group: The job group (classic) or operation tag (Connect), so that cancelling ends
            exactly these tasks.
        n_workers: How many tasks (Spark partitions) the job has.
        task: What every task runs: a ``mapPartitions`` function (an iterator of one row in,
            an iterator of ints out).
        on_end: Called from the job's thread when the job has ended, however it ended.
        profile: The ``ResourceProfile`` every task runs under (stage-level scheduling).
    """

    def __init__(
        self,
        spark: SparkSession,
        name: str,
        group: str,
        n_workers: int,
        task: Any,
        on_end: Callable[[], None] = lambda: None,
        profile: Any = None,
    ) -> None:
        self._spark = spark
        self.name = name
        self.group = group
        self._n_workers = n_workers
        self._task = task
        self._on_end = on_end
        self._profile = profile
        self._finished = threading.Event()
        self._lock = threading.Lock()  # orders _detached against the end of the job
        self._detached = False
        self._cancelled = False
        self.error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the job to end; returns whether it has."""
        return self._finished.wait(timeout)

    def start(self) -> None:
        from pyspark import InheritableThread

        # The job's thread inherits the caller's job properties (classic) or tags (Connect).
        session = self._spark if is_connect(self._spark) else None
        InheritableThread(
            target=self._run, name="optuna-spark-job", daemon=True, session=session
        ).start()

    def _run(self) -> None:
        try:
            if is_connect(self._spark):
                self._run_connect()
            else:
                sc = self._spark.sparkContext
                sc.setJobGroup(self.group, self.name, interruptOnCancel=True)
                rdd = sc.parallelize(range(self._n_workers), self._n_workers)
                tasks = rdd.mapPartitions(self._task)
                if self._profile is not None:
                    tasks = tasks.withResources(self._profile)
                tasks.collect()
        except BaseException as e:
            self.error = e
        finally:
            with self._lock:
                self._finished.set()
                late = self._detached
            if late:
                self._log_late_error()
            self._on_end()

    def _run_connect(self) -> None:
        # Tags are per thread: this one, the job's own, carries it; cancel() interrupts it.
        self._spark.addTag(self.group)
        try:
            rows = self._spark.range(0, self._n_workers, 1, numPartitions=self._n_workers)
            task = arrow_task(self._task)
            rows.mapInArrow(task, "trials long", profile=self._profile).collect()
        finally:
            self._spark.removeTag(self.group)

    def detach(self) -> None:
        """The study is over: the tasks wind down by themselves, and an error Spark raises
        for them (now, or later in the background) is logged rather than lost."""
        with self._lock:
            self._detached = True
            ended = self._finished.is_set()
        if ended:
            self._log_late_error()

    def _log_late_error(self) -> None:
        if self.error is not None and not self._cancelled:
            _logger.warning(
                "The Spark job %r failed after its study was over: %s",
                self.name,
                self.failure_message(),
            )

    def cancel(self, wait: float = CANCEL_WAIT) -> bool:
        """Cancel the job's tasks and wait up to ``wait`` seconds for Spark to end the job.

        Returns whether it ended in time. Spark interrupts the tasks' Python workers; one stuck
        in native code may take longer, and is then left to Spark.
        """
        self._cancelled = True
        if is_connect(self._spark):
            self._spark.interruptTag(self.group)
        else:
            self._spark.sparkContext.cancelJobGroup(self.group)
        ended = self._finished.wait(timeout=wait)
        if not ended:
            _logger.warning(
                "Spark had not ended the job %r %g s after cancelling it.", self.name, wait
            )
        return ended

    def failure_message(self) -> str | None:
        return None if self.error is None else spark_error_summary(self.error)


def arrow_task(task: Any) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """``task`` (a ``mapPartitions`` function) as a ``mapInArrow`` one."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        rows = [row for batch in batches for row in batch.column(0).to_pylist()]
        for n in task(iter(rows)):
            yield pa.RecordBatch.from_pydict({"trials": [n]})

    return run


def spark_error_summary(error: BaseException) -> str:
    """The lines of a (Py4J-wrapped) Spark job failure that say what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    aborted = next((ln for ln in lines if "Job aborted due to stage failure" in ln), None)
    python = [
        ln
        for ln in lines
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b[^:]*: ", ln)
        and not ln.startswith(("org.", "java.", "scala.", "py4j.", "Caused by"))
    ]
    parts = [p.lstrip(": ")[:500] for p in (aborted, python[-1] if python else None) if p]
    return " | ".join(parts) or f"{type(error).__name__}: {lines[0] if lines else ''}"
