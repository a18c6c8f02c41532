"""The run's state machine: running -> draining(reason) -> done, defined once.

A run is RUNNING while it hands out trials. The first reason to stop moves it to DRAINING:
no new trial starts, and the trials still running either finish (the reason only ends the
hand-out: ``n_trials`` reached, the sampler exhausted) or are told to stop at their next
``should_prune`` (the reason interrupts: a timeout, ``study.stop()``, an uncaught error, an
interruption, the workers gone). It is DONE when nothing runs any more. Every transition goes
through :meth:`RunState._transition`.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

from optuna_spark.exceptions import StorageUnavailableError

_logger = logging.getLogger(__name__)


class Phase(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    DONE = "done"


class StopReason(str, enum.Enum):
    """Why a run stops handing out trials."""

    N_TRIALS = "n_trials reached"
    EXHAUSTED = "the sampler is exhausted"
    TIMEOUT = "timeout"
    STUDY = "study.stop() was called"
    ERROR = "an objective raised an uncaught exception"
    STORAGE = "the study's storage failed for longer than storage_grace"
    INTERRUPTED = "interrupted"
    WORKERS_GONE = "the workers are gone"

    @property
    def interrupts(self) -> bool:
        """Whether running trials are told to stop, rather than left to finish."""
        return self not in (StopReason.N_TRIALS, StopReason.EXHAUSTED)

    def __str__(self) -> str:
        return self.value


class RunState:
    """Where a run is in its life, and why. Not thread-safe: the run's lock guards it.

    Args:
        on_change: Called after every transition (the run uses it to wake its waiters).
    """

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._phase = Phase.RUNNING
        self._reason: StopReason | None = None
        self._detail: str | None = None
        self._error: BaseException | None = None
        self._on_change = on_change

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def reason(self) -> StopReason | None:
        """Why the run stopped handing out trials (``None`` while it runs)."""
        return self._reason

    @property
    def detail(self) -> str:
        """The reason in words, with what the caller added (a Spark failure, say)."""
        if self._reason is None:
            return ""
        return f"{self._reason}: {self._detail}" if self._detail else str(self._reason)

    @property
    def error(self) -> BaseException | None:
        """The first uncaught error of the run; ``optimize`` raises it."""
        return self._error

    @property
    def interrupting(self) -> bool:
        """Whether running trials must be told to stop."""
        return self._reason is not None and self._reason.interrupts

    def drain(self, reason: StopReason, detail: str | None = None) -> None:
        """Stop handing out trials. The first reason wins, except that a reason that
        interrupts running trials overrides one that only ends the hand-out."""
        if self._phase is Phase.DONE:
            return
        current = self._reason
        if current is None or (reason.interrupts and not current.interrupts):
            self._transition(Phase.DRAINING, reason, detail)

    def fail(self, error: BaseException) -> None:
        """Record an uncaught error (the first one is kept) and drain for it."""
        if self._error is None:
            self._error = error
            self._on_change()  # waiters watch the error too, whatever the phase
        self.drain(
            StopReason.STORAGE if isinstance(error, StorageUnavailableError) else StopReason.ERROR
        )

    def finish(self) -> None:
        """Nothing runs any more and nothing more will start."""
        if self._phase is Phase.DRAINING:
            self._transition(Phase.DONE, self._reason, self._detail)

    def _transition(self, phase: Phase, reason: StopReason | None, detail: str | None) -> None:
        self._phase, self._reason, self._detail = phase, reason, detail
        _logger.debug("Run %s (%s).", phase.value, self.detail)
        self._on_change()


class Changes:
    """A condition that the run (and its Spark job) signal on every change worth a look.

    Supervisors wait on it with a predicate instead of polling: whoever changes something
    calls :meth:`notify`, and every waiter re-checks what it waits for.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        #: How many times it was notified.
        self.count = 0

    def notify(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_past(self, count: int, timeout: float | None = None) -> bool:
        """Wait until notified after it had been ``count`` times; returns whether it was."""
        return self.wait_for(lambda: self.count != count, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until ``predicate()`` holds or ``timeout`` seconds pass; returns its value."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)
