"""How ``optimize`` follows a run and its Spark job: by waiting on their events, not polling."""

from __future__ import annotations

import logging
import time

from optuna_spark.coordinator._run import StudyRun
from optuna_spark.spark._job import SparkJob

_logger = logging.getLogger(__name__)

_SLICE = 1.0


def supervise(
    run: StudyRun,
    job: SparkJob,
    *,
    n_workers: int,
    stuck_grace: float,
    stop_running_trials: bool,
    wind_down: float | None,
) -> bool:
    """Wait until the study is over for this call; returns whether the job ended first.

    The run signals every change of state, first error and dismissed worker, and the job
    signals its end, on ``run.changes``. This waits on those:

    1. until the run is done. When the job ends first (Spark gave up on the tasks), the run
       is closed with Spark's reason. After an uncaught error, trials that never ask
       ``should_prune`` would keep the study going: ``stuck_grace`` seconds later they are
       failed and the job is cancelled, as ``Study.optimize`` would not wait for them either.
    2. until every worker has asked once more and been told to stop (or ``wind_down``
       seconds passed: then the job is cancelled). Spark ends the finished tasks in the
       background; an error it raises then is logged. ``wind_down=None`` skips this step
       (the coordinator task of ``coordinator="cluster"``: the client winds the job down).
    """
    changes = run.changes
    error_deadline: float | None = None

    def watching_error() -> bool:
        return stop_running_trials and run.error is not None and error_deadline is None

    while True:
        # Waits are cut into slices of at most a second only so that Ctrl-C interrupts them
        # on every platform (a lock wait without a timeout cannot be interrupted on Windows).
        timeout = _SLICE
        if error_deadline is not None:
            timeout = min(timeout, max(0.0, error_deadline - time.monotonic()))
        woken = changes.wait_for(lambda: run.done or job.finished or watching_error(), timeout)
        if not woken and (error_deadline is None or time.monotonic() < error_deadline):
            continue
        if run.done:
            break
        if job.finished:
            run.close(job.failure_message() or "all Spark tasks ended")
            return True
        if error_deadline is None:
            error_deadline = time.monotonic() + stuck_grace
        elif time.monotonic() >= error_deadline:
            run.fail_running("stopped: another trial raised an uncaught error")
            job.cancel()

    if wind_down is None:
        return False
    deadline = time.monotonic() + wind_down
    while not (job.finished or run.n_dismissed >= n_workers) and time.monotonic() < deadline:
        changes.wait_for(
            lambda: job.finished or run.n_dismissed >= n_workers,
            min(_SLICE, max(0.0, deadline - time.monotonic())),
        )
    if job.finished or run.n_dismissed >= n_workers:
        job.detach()
    else:
        _logger.warning("Cancelling Spark tasks still running %g s after the study.", wind_down)
        job.cancel()
    return False
