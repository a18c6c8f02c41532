"""Riding out a storage outage: transient errors are retried with backoff, for a bound.

A managed database fails over, a PostgreSQL server restarts for a minor upgrade, an SQLite
file is locked for a moment: the study's storage raises for a few seconds, then works again.
A run that serves a whole cluster rides that out: each storage call that fails with a
*transient* error (the connection refused, closed or reset; SQLAlchemy's ``OperationalError``
or ``InterfaceError``, which Optuna's RDB storage wraps in ``StorageInternalError``) is retried
with exponential backoff until ``storage_grace`` seconds have passed since the first failure
of the outage; then :class:`~optuna_spark.exceptions.StorageUnavailableError` says what failed
and for how long. Anything else (an integrity error, a value the storage refuses, a full disk)
is raised at once: retrying would not help.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from optuna_spark.exceptions import StorageUnavailableError

_logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds a run rides out a failing storage by default.
DEFAULT_STORAGE_GRACE = 60.0
_FIRST_DELAY, _MAX_DELAY = 0.05, 2.0


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the storage is unreachable for now."""
    from sqlalchemy import exc as sqlalchemy_exc

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError)):
            return True
        if isinstance(current, sqlalchemy_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    return False


class StoragePatience:
    """Retries a storage call's transient failures for ``grace`` seconds (``0``: never).

    Args:
        grace: Seconds from an outage's first failure after which the call fails for good.
        sleep: How to wait between tries (for tests).
        clock: Monotonic seconds (for tests).
    """

    def __init__(
        self,
        grace: float = DEFAULT_STORAGE_GRACE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace = grace
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._outage_since: float | None = None  # for one log line per outage

    def once(self) -> _Once:
        """Calls in this block (on this thread) are tried once: a caller that must answer now
        (a worker's report, a pruning question) falls back on what it knows instead."""
        return _Once(self._local)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, retried while it fails transiently, within the grace."""
        if self.grace <= 0 or getattr(self._local, "once", False):
            return fn(*args, **kwargs)
        started: float | None = None
        delay = _FIRST_DELAY
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                if not is_transient(e):
                    raise
                now = self._clock()
                started = now if started is None else started
                if now - started >= self.grace:
                    raise StorageUnavailableError(
                        f"The study's storage failed for {now - started:.0f} s, longer than "
                        f"storage_grace={self.grace:g} s: {e}"
                    ) from e
                self._note_outage(e, now)
                self._sleep(min(delay, self.grace - (now - started)))
                delay = min(2 * delay, _MAX_DELAY)
            else:
                if started is not None:
                    self._note_recovery()
                return result

    def _note_outage(self, error: BaseException, now: float) -> None:
        if self._outage_since is None:
            self._outage_since = now
            _logger.warning(
                "The study's storage is failing (%s); retrying for up to %g s.",
                str(error).splitlines()[0] if str(error) else type(error).__name__,
                self.grace,
            )

    def _note_recovery(self) -> None:
        if self._outage_since is not None:
            _logger.warning(
                "The study's storage works again after %.1f s.",
                self._clock() - self._outage_since,
            )
            self._outage_since = None


class _Once:
    """:meth:`StoragePatience.once`: a class rather than a generator, entered on every
    report and pruning question."""

    def __init__(self, local: threading.local) -> None:
        self._local = local
        self._previous = False

    def __enter__(self) -> None:
        self._previous = getattr(self._local, "once", False)
        self._local.once = True

    def __exit__(self, *exc: object) -> None:
        self._local.once = self._previous
