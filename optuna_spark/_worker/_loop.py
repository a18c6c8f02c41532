"""The worker loop: ask the driver for a trial, run the objective, tell the outcome, repeat."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark import _protocol as p
from optuna_spark._client import Connection
from optuna_spark._client import Endpoint
from optuna_spark._service._run import trial_values_out
from optuna_spark._worker._trial import RemoteTrial
from optuna_spark.storages._remote import RemoteStorage

_logger = logging.getLogger(__name__)

Objective = Callable[[RemoteTrial], Any]

#: Exit status of a worker process that ended itself because its trial was stuck.
STUCK_EXIT_CODE = 75


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to join a run: where the driver is and which run to serve.

    Plain data: it pickles into a Spark closure. It holds the server's token.
    """

    endpoint: Endpoint
    run_id: str
    heartbeat_interval: float = 5.0
    exit_if_stuck_after: float | None = None


@dataclasses.dataclass
class _Outcome:
    kind: str
    values: Any = None
    error: list[str] | None = None
    caught: bool = True
    reraise: BaseException | None = None


def run_worker(
    spec: WorkerSpec,
    func: Objective,
    *,
    catch: tuple[type[Exception], ...] = (),
    info: dict[str, Any] | None = None,
) -> int:
    """Serve trials of ``spec``'s run until the driver says stop; returns how many ran.

    Exceptions of a type in ``catch`` fail only their trial. Any other exception fails the
    trial and stops the whole run: the driver re-raises it with this worker's traceback.

    Args:
        spec: The run to join (``StudyRun``'s server endpoint and id).
        func: The objective, called with a :class:`RemoteTrial`.
        catch: Exception types that fail a trial without stopping the study.
        info: Where this worker runs (recorded on each trial); host and pid are added.
    """
    if not isinstance(catch, tuple):
        raise TypeError(
            f"The catch argument is of type '{type(catch).__name__}' but must be a tuple."
        )
    worker = {"host": socket.gethostname(), "pid": os.getpid(), **(info or {})}
    conn = Connection(spec.endpoint)
    # One storage for every trial's ``trial.study``; it connects on first use only.
    storage = RemoteStorage.from_endpoint(spec.endpoint)
    beat = _Heartbeat(conn, spec)
    n = 0
    try:
        while True:
            reply = conn.call("run.ask", spec.run_id, worker)
            if reply is None:
                return n
            trial_id, number, study_name = reply
            trial = RemoteTrial(conn, spec.run_id, trial_id, number, study_name, storage)
            with beat.watch(trial_id):
                outcome = _run_objective(func, trial, catch)
            ended_by_driver = False
            try:
                conn.call(
                    "run.tell",
                    spec.run_id,
                    trial_id,
                    outcome.kind,
                    outcome.values,
                    outcome.error,
                    outcome.caught,
                )
            except UpdateFinishedTrialError as e:
                # The driver already failed this trial (lost, timed out); an error its
                # objective raised since is a consequence of that, not a reason to stop.
                _logger.warning("The driver had already ended trial %d: %s", number, e)
                ended_by_driver = True
            except ConnectionError:
                if outcome.reraise is None:
                    raise
                # Ctrl-C in the middle of a call closed the connection: the interruption,
                # not the connection, is what the caller must see.
            n += 1
            if outcome.reraise is not None:
                raise outcome.reraise
            if not outcome.caught and not ended_by_driver:
                return n
    finally:
        beat.stop()
        conn.close()
        storage.close()


def _run_objective(
    func: Objective, trial: RemoteTrial, catch: tuple[type[Exception], ...]
) -> _Outcome:
    try:
        value = func(trial)
    except optuna.TrialPruned:
        outcome = _Outcome("pruned")
    except Exception as e:
        outcome = _Outcome("failed", error=p.encode_error(e), caught=isinstance(e, catch))
    except KeyboardInterrupt as e:
        with contextlib.suppress(Exception):
            trial._conn.flush()
        return _Outcome("failed", error=p.encode_error(e), caught=False, reraise=e)
    else:
        outcome = _Outcome("values", values=trial_values_out(value))
    # Whatever the objective did, read the replies to its reports now: a report the driver
    # refused fails the trial, as it would have in-process (and is not left to refuse the
    # ``tell`` or the next ``ask`` instead).
    try:
        trial._conn.flush()
    except Exception as e:
        return _Outcome("failed", error=p.encode_error(e), caught=isinstance(e, catch))
    return outcome


class _Heartbeat:
    """Tells the driver, while a trial runs, that this worker is alive.

    When the driver has ended the trial (its time limit passed) and the objective is still
    running ``exit_if_stuck_after`` seconds later, the process exits so that the slot is
    freed: Spark then starts a fresh attempt of the task, which asks for the next trial.
    """

    def __init__(self, conn: Connection, spec: WorkerSpec) -> None:
        self._conn = conn
        self._spec = spec
        self._trial_id: int | None = None
        self._cancelled_at: float | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="optuna-spark-heartbeat", daemon=True
        )
        self._thread.start()

    def watch(self, trial_id: int) -> _Watching:
        return _Watching(self, trial_id)

    def _set(self, trial_id: int | None) -> None:
        with self._lock:
            self._trial_id = trial_id
            self._cancelled_at = None

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=max(5.0, 2 * self._spec.heartbeat_interval))

    def _loop(self) -> None:
        interval = self._spec.heartbeat_interval
        while not self._stopped.wait(interval):
            with self._lock:
                trial_id, cancelled_at = self._trial_id, self._cancelled_at
            if trial_id is None:
                continue
            if cancelled_at is not None:
                limit = self._spec.exit_if_stuck_after
                if limit is not None and time.monotonic() - cancelled_at > limit:
                    _logger.error(
                        "Trial (id %d) was ended by the driver but its objective is still "
                        "running after %.0f s; exiting this worker so its slot is freed.",
                        trial_id,
                        limit,
                    )
                    os._exit(STUCK_EXIT_CODE)
                continue
            try:
                gone = self._conn.call(
                    "run.heartbeat", self._spec.run_id, [trial_id], raise_deferred=False
                )
            except (ConnectionError, OSError):
                return  # the loop itself will see the connection is gone
            except Exception:
                # Never let a heartbeat error end the thread silently: later trials would
                # miss their heartbeats and be failed as lost.
                _logger.exception("A heartbeat to the driver failed; trying again.")
                continue
            if gone:
                with self._lock:
                    if self._trial_id == trial_id:
                        self._cancelled_at = time.monotonic()


class _Watching:
    def __init__(self, beat: _Heartbeat, trial_id: int) -> None:
        self._beat = beat
        self._trial_id = trial_id

    def __enter__(self) -> None:
        self._beat._set(self._trial_id)

    def __exit__(self, *exc: object) -> None:
        self._beat._set(None)
