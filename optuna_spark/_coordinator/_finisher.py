"""What follows the end of a trial, run in order and off every request's path.

Recording a trial's outcome writes to the study's storage (Optuna's tell, the sampler's
``after_trial``, the trial's output), and a finished trial then goes to the user's callbacks.
Both may be slow (a remote database, an ``MLflowCallback``); neither may hold up a worker or
the run's bookkeeping. The :class:`Finisher` runs them on two threads of its own, each fed in
order by a queue:

1. the *record* stage: each trial's storage writes, in the order the trials ended;
2. the *callback* stage: the callbacks of each recorded trial, in the same order.

A slow callback delays only the callbacks queued behind it, never the recording of later
trials (so the sampler soon sees them finished) nor any worker. The run is over only when
both stages are idle.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

_logger = logging.getLogger(__name__)

#: A callback-stage job.
FollowUp = Callable[[], None]
#: A record-stage job; it returns the trial's callback-stage job, if it has one.
Record = Callable[[], FollowUp | None]

#: Seconds a stage's thread lingers without work before it ends (the next job starts another).
_LINGER = 2.0


class Stage:
    """One thread that runs submitted jobs one at a time, in the order they came."""

    def __init__(self, name: str, on_idle: Callable[[], None]) -> None:
        self._name = name
        self._on_idle = on_idle
        self._cond = threading.Condition()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._busy = 0  # submitted and not finished
        self._thread_alive = False

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._jobs.append(job)
            self._busy += 1
            if not self._thread_alive:
                self._thread_alive = True
                threading.Thread(target=self._loop, name=self._name, daemon=True).start()
            else:
                self._cond.notify()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._jobs), _LINGER):
                    self._thread_alive = False
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # jobs handle their own errors; this is a last resort
                _logger.exception("Finishing a trial failed.")
            with self._cond:
                self._busy -= 1
                idle = self._busy == 0
                if idle:
                    self._cond.notify_all()
            if idle:
                self._on_idle()


class Finisher:
    """Records finished trials, then runs their callbacks, in order, on threads of its own.

    Args:
        name: A prefix for the threads' names.
        on_idle: Called (from a stage's thread, no lock held) whenever a stage runs out of
            work: the run checks then whether it is over.
    """

    def __init__(self, name: str, on_idle: Callable[[], None] = lambda: None) -> None:
        self._record = Stage(f"{name}-record", on_idle)
        self._callbacks = Stage(f"{name}-callbacks", on_idle)

    @property
    def busy(self) -> bool:
        """Whether a trial is still being recorded, or its callbacks still run."""
        return self._record.busy or self._callbacks.busy

    def submit(self, record: Record) -> None:
        """Queue ``record``; what it returns is queued for the callback stage."""

        def job() -> None:
            follow_up = record()
            if follow_up is not None:
                self._callbacks.submit(follow_up)

        self._record.submit(job)

    def submit_follow_up(self, follow_up: FollowUp) -> None:
        """Queue a callback-stage job directly (behind the callbacks already queued)."""
        self._callbacks.submit(follow_up)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far has run; returns whether it has."""
        return self._record.wait_idle(timeout) and self._callbacks.wait_idle(timeout)
