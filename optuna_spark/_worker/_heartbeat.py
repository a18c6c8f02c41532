"""The heartbeat thread: tells the driver, while a trial runs, that its worker is alive."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection

_logger = logging.getLogger(__name__)

#: Exit status of a worker process that ended itself because its trial was stuck.
STUCK_EXIT_CODE = 75


class Heartbeat:
    """Beats every ``interval`` seconds for the trial being watched.

    When the driver has ended the trial (its time limit passed) and the objective is still
    running ``exit_if_stuck_after`` seconds later, the process exits so that the slot is
    freed: Spark then starts a fresh attempt of the task, which asks for the next trial.
    """

    def __init__(
        self,
        conn: Connection,
        run_id: str,
        interval: float,
        exit_if_stuck_after: float | None,
        on_save: Callable[[int], None] = lambda trial_id: None,
    ) -> None:
        self._conn = conn
        self._on_save = on_save
        self._own_run_id = self._run_id = run_id
        self._interval = interval
        self._exit_if_stuck_after = exit_if_stuck_after
        self._trial_id: int | None = None
        self._cancelled_at: float | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="optuna-spark-heartbeat", daemon=True
        )
        self._thread.start()

    def watch(self, trial_id: int, run_id: str | None = None) -> _Watching:
        """``with heartbeat.watch(trial_id):`` beats for that trial while the block runs
        (``run_id``: the trial's run, when it is not the worker's own, as in a pool)."""
        return _Watching(self, trial_id, run_id or self._own_run_id)

    def _set(self, trial_id: int | None, run_id: str | None = None) -> None:
        with self._lock:
            self._trial_id = trial_id
            self._run_id = run_id or self._own_run_id
            self._cancelled_at = None

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=max(5.0, 2 * self._interval))

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._lock:
                trial_id, cancelled_at, run_id = self._trial_id, self._cancelled_at, self._run_id
            if trial_id is None:
                continue
            if cancelled_at is not None:
                self._exit_if_stuck(trial_id, cancelled_at)
                continue
            try:
                reply = self._conn.call(m.Heartbeat(run_id, [trial_id]), raise_deferred=False)
            except (ConnectionError, OSError):
                return  # the loop itself will see the connection is gone
            except Exception:
                # Never let a heartbeat error end the thread silently: later trials would
                # miss their heartbeats and be failed as lost.
                _logger.exception("A heartbeat to the driver failed; trying again.")
                continue
            if reply.save:
                self._on_save(trial_id)
            if reply.gone:
                with self._lock:
                    if self._trial_id == trial_id:
                        self._cancelled_at = time.monotonic()

    def _exit_if_stuck(self, trial_id: int, cancelled_at: float) -> None:
        limit = self._exit_if_stuck_after
        if limit is not None and time.monotonic() - cancelled_at > limit:
            _logger.error(
                "Trial (id %d) was ended by the driver but its objective is still running "
                "after %.0f s; exiting this worker so its slot is freed.",
                trial_id,
                limit,
            )
            os._exit(STUCK_EXIT_CODE)


class _Watching:
    def __init__(self, beat: Heartbeat, trial_id: int, run_id: str) -> None:
        self._beat = beat
        self._trial_id = trial_id
        self._run_id = run_id

    def __enter__(self) -> None:
        self._beat._set(self._trial_id, self._run_id)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._beat._set(None)
