"""The hand-out: whether a trial may start now, and its place in ``n_trials``.

Every ask of a worker comes here first, under the run's bookkeeping lock, with what the
sampler can give (:class:`~optuna_spark._handout.Availability`, read before the lock). The
answer is to start a trial now (its place in ``n_trials`` is taken at once, so that
``n_trials`` stays exact and the run is not over while the trial is being made), to wait for
a running trial to finish (an adaptive sampler), or to stop (the worker is dismissed).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from optuna_spark._coordinator._retry import RetryPolicy
from optuna_spark._coordinator._state import RunState
from optuna_spark._coordinator._state import StopReason
from optuna_spark._handout import Availability


class Verdict(enum.Enum):
    """What an ask gets."""

    START = "start"
    WAIT = "wait"
    STOP = "stop"


class Handout:
    """``n_trials``, ``timeout`` and the trials being made. Not thread-safe: the run's lock
    guards it.

    Args:
        n_trials: How many trials the run starts at most (``None``: no limit).
        timeout: Seconds after which no trial starts (``None``: no limit).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        n_trials: int | None,
        timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.n_trials = n_trials
        self.timeout = timeout
        self._clock = clock
        self._t0 = clock()
        #: Trials started (or being made) by this run.
        self.n_started = 0
        #: Trials being made: counted in ``n_started``, not leased yet.
        self.n_making = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self._t0

    def limit_reached(self) -> StopReason | None:
        """``N_TRIALS`` or ``TIMEOUT`` once either limit is reached, else ``None``."""
        if self.n_trials is not None and self.n_started >= self.n_trials:
            return StopReason.N_TRIALS
        if self.timeout is not None and self.elapsed >= self.timeout:
            return StopReason.TIMEOUT
        return None

    def reserve(
        self,
        state: RunState,
        availability: Availability,
        retries: RetryPolicy,
        may_resume: bool = False,
        room: bool = True,
    ) -> Verdict:
        """Whether a trial may start now; if so, count it (see :meth:`made`, :meth:`unmade`).

        A lost trial's retry starts before anything new: while one is being decided, the ask
        waits for the decision. It still starts when the sampler has nothing left to give.
        Once nothing new may start, an ask still waits rather than stop while a running trial
        may come back to resume (``may_resume``), unless the run is stopping. Without
        ``room`` (``max_concurrent_trials`` trials in flight) a trial that may start waits.
        """
        if state.reason is None:
            reached = self.limit_reached()
            if reached is not None:
                state.drain(reached)
            elif availability is Availability.EXHAUSTED:
                state.drain(StopReason.EXHAUSTED)
        if state.reason is StopReason.EXHAUSTED and retries.may_come:
            if not retries.has_pending:
                return Verdict.WAIT
        elif state.reason is not None:
            return Verdict.WAIT if may_resume and not state.interrupting else Verdict.STOP
        elif availability is Availability.WAIT or (retries.deciding and not retries.has_pending):
            return Verdict.WAIT
        if not room:
            return Verdict.WAIT
        self.n_started += 1
        self.n_making += 1
        return Verdict.START

    def made(self) -> None:
        """The reserved trial exists and is leased."""
        self.n_making -= 1

    def unmade(self) -> None:
        """The reserved trial could not be made: its place in ``n_trials`` is free again."""
        self.n_making -= 1
        self.n_started -= 1
