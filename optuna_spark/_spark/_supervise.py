"""How ``optimize`` follows a run and its Spark job: by waiting on their events, not polling."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from optuna_spark._coordinator._pool import RunPool
from optuna_spark._coordinator._run import StudyRun
from optuna_spark._coordinator._state import Changes

_logger = logging.getLogger(__name__)

_SLICE = 1.0


class Job(Protocol):
    """What :func:`supervise` reads and does of the tasks that serve a run: a
    :class:`~optuna_spark._spark._job.SparkJob`, or, from the coordinator task of
    ``coordinator="cluster"``, the rest of its job."""

    @property
    def finished(self) -> bool:
        """Whether every task has ended."""
        ...

    def cancel(self, wait: float = ...) -> bool:
        """Cancel the tasks still running; returns whether they ended within ``wait`` s."""
        ...

    def detach(self) -> None:
        """Let the tasks end in the background (the study is over)."""
        ...

    def failure_message(self) -> str | None:
        """Why the tasks failed, in a line, if they did."""
        ...


class Interruptible(Protocol):
    """A run that can fail its running trials: a ``StudyRun``, or the client's view of one
    served in the cluster."""

    def fail_running(self, reason: str) -> None: ...


def interrupt(run: Interruptible, job: Job | None, reason: str) -> None:
    """Ctrl-C, in either coordinator placement: fail the running trials with ``reason`` first
    (so that it, and not their workers' lost connections, is why they ended), then cancel
    the job (if it was made)."""
    run.fail_running(reason)
    if job is not None:
        job.cancel()


class Placement(Protocol):
    """One ``optimize`` call in one coordinator placement (``_on_driver``, ``_cluster``):
    made with everything checked and nothing started, then run by :func:`run_placement`."""

    #: Where Ctrl-C is pressed, for the reason recorded on the trials it ends.
    side: str

    def start(self) -> None:
        """Start serving the run and the job of its workers."""
        ...

    def follow(self) -> None:
        """Wait for the study's end for this call, then raise what ``Study.optimize`` would."""
        ...

    def interrupt(self, reason: str) -> None:
        """Ctrl-C: fail the running trials with ``reason``, then cancel the job."""
        ...

    def close(self) -> None:
        """Release what it holds (service, progress bar, output echo), whatever happened."""
        ...


def run_placement(placement: Placement) -> None:
    """Start, follow and end one call the same way in every placement: Ctrl-C at any point
    fails the running trials before the job is cancelled, and is raised again."""
    try:
        placement.start()
        placement.follow()
    except KeyboardInterrupt:
        placement.interrupt(f"interrupted: KeyboardInterrupt on the {placement.side}")
        raise
    finally:
        placement.close()


def supervise(
    run: StudyRun,
    job: Job,
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
    ended_first = _until_done(run, job, stuck_grace, stop_running_trials)
    if wind_down is not None and not ended_first:
        let_workers_go(run, job, n_workers, wind_down)
    return ended_first


def _until_done(run: StudyRun, job: Job, stuck_grace: float, stop_running_trials: bool) -> bool:
    """Step 1 of :func:`supervise`: returns whether the job ended first."""
    changes = run.changes
    error_deadline: float | None = None
    cancelled = False

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
            return False
        if job.finished:
            run.close(job.failure_message() or "all Spark tasks ended")
            while not run.wait(_SLICE):  # the trials it failed are being recorded
                pass
            return not cancelled  # a job cancelled here did not end "first"
        if error_deadline is None:
            error_deadline = time.monotonic() + stuck_grace
        elif time.monotonic() >= error_deadline and not cancelled:
            run.fail_running("stopped: another trial raised an uncaught error")
            job.cancel()
            cancelled = True


class Dismissing(Protocol):
    """A run or a pool: its change signal and how many workers it told to stop."""

    @property
    def changes(self) -> Changes: ...

    @property
    def n_dismissed(self) -> int: ...


def let_workers_go(run: Dismissing, job: Job, n_workers: int, wind_down: float) -> None:
    """Step 2 of :func:`supervise`: wait for every worker to be told to stop (then Spark ends
    the tasks in the background), or cancel the job after ``wind_down`` seconds."""
    changes = run.changes
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


def supervise_pool(
    pool: RunPool,
    job: Job,
    *,
    n_workers: int,
    stuck_grace: float,
    stop_running_trials: bool,
    wind_down: float | None,
) -> bool:
    """Wait until every study of ``pool`` is over; returns whether the job ended first.

    As ``supervise`` for one run, except that an uncaught error stops its own study only:
    ``stuck_grace`` seconds after it, that study's trials still running (objectives that
    never ask ``should_prune``) are failed, and the job goes on with the other studies.
    """
    seen: set[str] = set()  # runs whose error has been seen
    deadlines: dict[str, float] = {}  # run id -> when its stuck trials are failed

    def new_error() -> bool:
        return stop_running_trials and len(pool.errors) > len(seen)

    while True:
        now = time.monotonic()
        timeout = min([_SLICE, *(max(0.0, d - now) for d in deadlines.values())])
        pool.changes.wait_for(lambda: pool.done or job.finished or new_error(), timeout)
        if pool.done:
            break
        if job.finished:
            pool.close(job.failure_message() or "all Spark tasks ended")
            while not pool.wait(_SLICE):  # the trials it failed are being recorded
                pass
            return True
        now = time.monotonic()
        for run, _ in pool.errors if stop_running_trials else ():
            if run.run_id not in seen:
                seen.add(run.run_id)
                deadlines[run.run_id] = now + stuck_grace
            elif run.run_id in deadlines and now >= deadlines[run.run_id]:
                del deadlines[run.run_id]  # once: what it fails ends, nothing else starts
                run.fail_running("stopped: another trial of its study raised an uncaught error")
    if wind_down is not None:
        let_workers_go(pool, job, n_workers, wind_down)
    return False
