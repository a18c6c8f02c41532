"""Executors being decommissioned: their trials save and resume elsewhere.

With graceful decommissioning (``spark.decommission.enabled``: a standalone worker sent
SIGPWR, a YARN or Kubernetes scale-down, a cloud's spot notice), Spark stops scheduling tasks
on the executor and lets the running ones finish. Ours never finish by themselves, so the
driver watches the executors that run trials and, when one is decommissioning, asks its trials
to save (``optuna_spark.checkpoint``) and hand themselves back; they resume on other workers,
and the executor's worker is told to stop.

Spark says which executors are decommissioning only on the driver, in its scheduler
(``TaskSchedulerImpl.getExecutorDecommissionState``, a JVM method PySpark does not expose):
this module is the one place that reads it, and stops watching, with a log line, if it cannot.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from optuna_spark._spark import _session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)

#: Seconds between two looks at the executors of running trials.
WATCH_EVERY = 1.0


class Watched(Protocol):
    """A run, or a pool of runs: where its trials run, and whom to tell."""

    def executors(self) -> set[str]: ...

    def decommission(self, executor_id: str) -> None: ...


def decommissioning(scheduler: Any, executor_id: str) -> bool:
    """Whether Spark's ``scheduler`` has executor ``executor_id`` decommissioning."""
    return bool(scheduler.getExecutorDecommissionState(executor_id).isDefined())


class DecommissionWatcher:
    """A thread that tells ``run`` which executors are being decommissioned, until closed.

    Args:
        spark: A classic session (Spark Connect clients cannot see the scheduler).
        run: The run whose trials' executors are watched.
    """

    def __init__(self, spark: SparkSession, run: Watched) -> None:
        self._scheduler = spark.sparkContext._jsc.sc().taskScheduler()
        self._run = run
        self._told: set[str] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="optuna-spark-decommission", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.wait(WATCH_EVERY):
            try:
                for executor_id in self._run.executors() - self._told:
                    if decommissioning(self._scheduler, executor_id):
                        self._told.add(executor_id)
                        self._run.decommission(executor_id)
            except Exception:
                if self._closed.is_set():
                    return
                _logger.warning(
                    "Cannot read which executors are decommissioning from Spark's scheduler; "
                    "trials on a decommissioned executor will resume as lost ones.",
                    exc_info=True,
                )
                return

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5.0)


def watch_decommissions(
    spark: SparkSession, run: Watched, resumes: bool
) -> DecommissionWatcher | None:
    """Watch ``run``'s executors when its trials can resume (``resumes``: the run's
    ``resume_lost_trials``) and the session is classic; else ``None``."""
    if not resumes or _session.is_connect(spark):
        return None
    try:
        return DecommissionWatcher(spark, run)
    except Exception:
        _logger.warning("Cannot watch Spark's decommissioning executors.", exc_info=True)
        return None
