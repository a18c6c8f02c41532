"""``coordinator="cluster"``: the run and its service live in task 0 of the job itself.

On Spark Connect (serverless compute, a laptop client) executors often cannot open a
connection to the client. Then the job has ``n_workers + 1`` tasks: task 0 loads the study
from its storage (which the cluster must reach), serves the run exactly as the driver would
(sampler, pruner, callbacks, ``n_trials``, ``timeout``) and publishes where it listens in a
study system attribute; tasks 1..n read that address and run the worker loop. The secret
travels in the Spark closure only; the storage holds the address, never the token.

The client follows the run through the same attribute (``RunRecord``): progress, the end,
and the error an objective raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

import msgspec
import optuna
from optuna.storages import BaseStorage

from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._errors import encode_error
from optuna_spark.wire._errors import rebuild_error
from optuna_spark.worker._loop import Objective
from optuna_spark.worker._loop import WorkerSpec
from optuna_spark.worker._loop import run_worker
from optuna_spark.worker._spark_task import task_info

_logger = logging.getLogger(__name__)

#: The study system attribute of one ``optimize`` call run in the cluster.
RECORD_PREFIX = "optuna_spark:cluster:"
#: Seconds a worker task waits for the coordinator task to publish its address.
WAIT_FOR_COORDINATOR = 300.0
_POLL = 0.2


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """Everything task 0 needs to serve the run, and the workers to join it (pickled by
    Spark into the job's closure: it holds the secret)."""

    call_id: str
    token: str
    study_name: str
    storage: BaseStorage
    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    run_kwargs: dict[str, Any]
    n_workers: int
    heartbeat_interval: float
    stuck_grace: float
    exit_if_stuck_after: float | None
    gc_after_trial: bool = False


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the coordinator task publishes about the run (a study system attribute)."""

    state: str  # "running", then "done"
    host: str | None = None
    port: int | None = None
    run_id: str | None = None
    error: m.ErrorInfo | None = None
    stop_reason: str | None = None
    n_finished: int = 0
    cancel: bool = False  # the client must cancel the tasks still running


def record_key(call_id: str) -> str:
    return RECORD_PREFIX + call_id


def read_record(storage: BaseStorage, study_id: int, call_id: str) -> RunRecord | None:
    raw = storage.get_study_system_attrs(study_id).get(record_key(call_id))
    return None if raw is None else msgspec.convert(raw, RunRecord)


def write_record(storage: BaseStorage, study_id: int, call_id: str, record: RunRecord) -> None:
    storage.set_study_system_attr(study_id, record_key(call_id), msgspec.to_builtins(record))


def record_error(record: RunRecord) -> BaseException | None:
    return None if record.error is None else rebuild_error(record.error)


def make_cluster_task(
    spec: ClusterSpec, func: Objective, catch: tuple[type[Exception], ...]
) -> Any:
    """The ``mapPartitions`` function of the job: task 0 coordinates, the others work."""

    def task(rows: Iterable[Any]) -> Iterator[int]:
        partition = next(iter(rows))
        if partition == 0:
            yield _coordinate(spec)
        else:
            yield _work(spec, func, catch)

    return task


def _bind_host() -> str:
    """This executor's address, as Spark knows it (``SPARK_LOCAL_IP``) or its host name's."""
    host = os.environ.get("SPARK_LOCAL_IP")
    if host:
        return host
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class _TasksOfTheJob:
    """The rest of the job, as ``supervise`` sees it from task 0: it cannot see the other
    tasks end and cannot cancel them, so a cancel is asked of the client through the record."""

    finished = False
    cancel_requested = False

    def cancel(self, wait: float = 0.0) -> bool:
        self.cancel_requested = True
        return True

    def detach(self) -> None:
        pass

    def failure_message(self) -> str | None:
        return None


def _coordinate(spec: ClusterSpec) -> int:
    from pyspark import TaskContext

    storage = spec.storage
    study_id = storage.get_study_id_from_name(spec.study_name)
    ctx = TaskContext.get()
    if ctx is not None and ctx.attemptNumber() > 0:
        # The coordinator was lost: its run, and its workers' trials, went with it.
        previous = read_record(storage, study_id, spec.call_id)
        lost = RuntimeError("The coordinator's Spark task was lost; run optimize again.")
        _end_early(spec, study_id, lost, None if previous is None else previous.run_id)
        return 0
    try:
        run, server = _open_run(spec)
    except Exception as e:
        # The run cannot start here (a sampler that does not load, say): the client raises
        # this error, rather than Spark retrying the task into a "coordinator lost".
        _end_early(spec, study_id, e, None)
        return 0
    return _serve(spec, study_id, run, server)


def _end_early(spec: ClusterSpec, study_id: int, error: BaseException, run_id: str | None) -> None:
    """Publish that the run ended before it served: the client raises ``error``."""
    record = RunRecord(state="done", run_id=run_id, error=encode_error(error), cancel=True)
    write_record(spec.storage, study_id, spec.call_id, record)


def _open_run(spec: ClusterSpec) -> tuple[Any, Any]:
    """The run and its (started) server, in this task."""
    from optuna_spark.coordinator import StudyRun
    from optuna_spark.coordinator import StudyServer

    study = optuna.load_study(
        study_name=spec.study_name, storage=spec.storage, sampler=spec.sampler, pruner=spec.pruner
    )
    run = StudyRun(study, **spec.run_kwargs)
    server = StudyServer(
        spec.storage,
        host=_bind_host(),
        token=spec.token,
        heartbeat_interval=min(1.0, spec.heartbeat_interval),
        idle_timeout=max(300.0, 4 * spec.heartbeat_interval),
    )
    try:
        server.start()
    except BaseException:
        run.stop()  # its lease says it is over
        raise
    return run, server


def _serve(spec: ClusterSpec, study_id: int, run: Any, server: Any) -> int:
    """Serve ``run`` to the workers until it is over; the record says how it ended."""
    from optuna_spark.spark._supervise import supervise

    tasks = _TasksOfTheJob()
    with server:
        server.add_run(run)
        running = RunRecord(state="running", host=server.host, port=server.port, run_id=run.run_id)
        write_record(spec.storage, study_id, spec.call_id, running)
        try:
            supervise(
                run,
                tasks,  # type: ignore[arg-type]
                n_workers=spec.n_workers,
                stuck_grace=spec.stuck_grace,
                stop_running_trials=run.stop_running_trials,
                wind_down=None,  # the client waits for the tasks to end, and cancels them
            )
        finally:
            server.remove_run(run)
            done = RunRecord(
                state="done",
                host=server.host,
                port=server.port,
                run_id=run.run_id,
                error=None if run.error is None else encode_error(run.error),
                stop_reason=None if run.stop_reason is None else str(run.stop_reason),
                n_finished=run.n_finished,
                cancel=tasks.cancel_requested,
            )
            write_record(spec.storage, study_id, spec.call_id, done)
    return int(run.n_finished)


def _work(spec: ClusterSpec, func: Objective, catch: tuple[type[Exception], ...]) -> int:
    storage = spec.storage
    study_id = storage.get_study_id_from_name(spec.study_name)
    deadline = time.monotonic() + WAIT_FOR_COORDINATOR
    record = read_record(storage, study_id, spec.call_id)
    while record is None or record.state not in ("running", "done"):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"The coordinator task did not start within {WAIT_FOR_COORDINATOR:g} s."
            )
        time.sleep(_POLL)
        record = read_record(storage, study_id, spec.call_id)
    if record.state == "done" or record.host is None or record.port is None:
        return 0
    assert record.run_id is not None
    local = spec.run_kwargs["sampling"] == "workers"
    worker = WorkerSpec(
        Endpoint(record.host, record.port, spec.token),
        record.run_id,
        heartbeat_interval=spec.heartbeat_interval,
        exit_if_stuck_after=spec.exit_if_stuck_after,
        sampler=spec.sampler if local else None,
        pruner=spec.pruner if local else None,
        gc_after_trial=spec.gc_after_trial,
    )
    return run_worker(worker, func, catch=catch, info=task_info())
