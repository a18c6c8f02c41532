"""The read lane: reads whose cost grows with the study, one at a time, in arrival order, and
within a share of the server's time.

A client reading every trial of a large study in a loop (or several doing it at once) would
otherwise take the server's CPU, and with it the interpreter lock, from the requests of the
running trials (asks, reports, pruning questions, tells), which are small. Each such read
waits for its turn in the lane (first come, first served: a connection sends one request at a
time, so the lane takes the connections in turn and none can keep another's read waiting for
long). What the reads cost the server's CPU is drawn from a budget that refills at ``share``
of a CPU second per second and holds at most ``burst`` seconds: a burst of reads (every worker
reading the study once as it starts, a dashboard opening) is served at once, and reads in a
loop, from one connection or many, take at most ``share`` of the server's time, the lane
resting until the budget is back. A client reading only what changed (``RemoteStorage`` does)
pays next to nothing.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: The share of the server's time that study-sized reads in a loop may take together.
DEFAULT_READ_SHARE = 0.25
#: The CPU seconds of study-sized reads served at once, before the share applies.
DEFAULT_READ_BURST = 1.0


class ReadLane:
    """Runs reads one at a time, first come first served, within ``share`` of the time.

    Args:
        share: The share (0 to 1] of a CPU second per second that refills the budget.
        burst: The most CPU seconds the budget holds.
        cpu_clock: The CPU seconds of the calling thread (what a read costs the server).
        clock: Monotonic seconds.
        sleep: Waits a number of seconds.
    """

    def __init__(
        self,
        share: float = DEFAULT_READ_SHARE,
        burst: float = DEFAULT_READ_BURST,
        *,
        cpu_clock: Callable[[], float] = time.thread_time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}.")
        if burst < 0:
            raise ValueError(f"burst must be at least 0, got {burst!r}.")
        self._share = share
        self._burst = burst
        self._cpu_clock = cpu_clock
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: collections.deque[threading.Event] = collections.deque()
        self._budget = burst  # CPU seconds; below 0 after a read that cost more than it held
        self._refilled_at = clock()

    def run(self, read: Callable[[], T]) -> T:
        """``read()``, in its turn and once the budget allows."""
        self._enter()
        try:
            if self._refill() < 0:
                self._sleep(-self._budget / self._share)
                self._refill()
            started = self._cpu_clock()
            try:
                return read()
            finally:
                self._budget -= self._cpu_clock() - started
        finally:
            self._leave()

    def _refill(self) -> float:
        now = self._clock()
        self._budget = min(self._burst, self._budget + (now - self._refilled_at) * self._share)
        self._refilled_at = now
        return self._budget

    def _enter(self) -> None:
        with self._lock:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the lane is handed over, still busy

    def _leave(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._busy = False
