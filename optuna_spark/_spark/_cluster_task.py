"""``coordinator="cluster"``: the run and its service live in task 0 of the job itself.

On Spark Connect (serverless compute, a laptop client) executors often cannot open a
connection to the client. Then the job has ``n_workers + 1`` tasks: task 0 loads the study
from its storage (which the cluster must reach), serves the run exactly as the driver would
(sampler, pruner, callbacks, ``n_trials``, ``timeout``) and publishes where it listens in a
study system attribute; tasks 1..n read that address and run the worker loop. The secret
travels in the Spark closure only; the storage holds the address, never the token.

The client follows the run through the same attribute (``RunRecord``): progress, the end,
and the error an objective raised. For ``optimize_many`` task 0 serves a ``RunPool`` of the
studies' runs (the record, on the first study, names each study's run), and the workers ask
the pool.

When task 0 is lost, Spark's retry of it takes the run over from the storage: it opens a new
run on the study with what is left of ``n_trials`` and ``timeout``, which fails the lost
run's RUNNING trials or, with ``resume_lost_trials``, adopts those with a checkpoint, and
publishes its address; the workers, whose connection closed, wait for that address and go on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import time
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import msgspec
import optuna
from optuna.storages import BaseStorage

from optuna_spark._worker._loop import Objective
from optuna_spark._worker._loop import run_worker
from optuna_spark._worker._spark_task import task_info
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._errors import encode_error
from optuna_spark.wire._errors import rebuild_error
from optuna_spark.wire.spec import RunConfig
from optuna_spark.wire.spec import WorkerSpec

_logger = logging.getLogger(__name__)

#: The study system attribute of one ``optimize`` call run in the cluster.
RECORD_PREFIX = "optuna_spark:cluster:"
#: Seconds a worker task waits for the coordinator task to publish its address.
WAIT_FOR_COORDINATOR = 300.0
_POLL = 0.2


@dataclasses.dataclass(frozen=True)
class ClusterStudy:
    """One study task 0 serves: where to load it from, and its run's config."""

    study_name: str
    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    config: RunConfig


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """Everything task 0 needs to serve the call's run (or, with ``pool``, its studies' runs
    in one ``RunPool``), and the workers to join it (pickled by Spark into the job's closure:
    it holds the secret). The call's record lives on the first study."""

    call_id: str
    token: str
    storage: BaseStorage
    studies: tuple[ClusterStudy, ...]
    n_workers: int
    heartbeat_interval: float
    stuck_grace: float
    exit_if_stuck_after: float | None
    gc_after_trial: bool = False
    service_port: int = 0
    pool: bool = False

    @property
    def first(self) -> ClusterStudy:
        return self.studies[0]


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the coordinator task publishes about the run (a study system attribute)."""

    state: str  # "running", then "done"
    host: str | None = None
    port: int | None = None
    run_id: str | None = None
    error: m.ErrorInfo | None = None
    cancel: bool = False  # the client must cancel the tasks still running
    #: The runs of this call before ``run_id`` (their coordinators were lost), oldest first.
    earlier: list[str] = []
    #: When the call's first coordinator started (unix time), for what is left of ``timeout``.
    started: float | None = None
    #: With a pool: each study's run now, by study name (``run_id`` is the pool's).
    runs: dict[str, str] = {}
    #: With a pool: the study whose objective raised ``error``.
    error_study: str | None = None

    @property
    def run_ids(self) -> list[str]:
        """Every run of this call (each study's, with a pool), the current ones last."""
        now = list(self.runs.values()) if self.runs else [self.run_id] if self.run_id else []
        return [*self.earlier, *now]


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
    spec: ClusterSpec,
    func: Objective | Mapping[str, Objective],
    catch: tuple[type[Exception], ...],
) -> Any:
    """The ``mapPartitions`` function of the job: task 0 coordinates, the others work
    (``func``: the objective, or with a pool, each study's by name)."""

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
    study_id = storage.get_study_id_from_name(spec.first.study_name)
    ctx = TaskContext.get()
    previous = None
    if ctx is not None and ctx.attemptNumber() > 0:
        # An earlier attempt of this task was lost: take its run over, unless it had ended.
        previous = read_record(storage, study_id, spec.call_id)
        if previous is not None and previous.state == "done":
            return 0
    try:
        runs = [
            _load_run(spec, study, _left_over(spec, study, previous)) for study in spec.studies
        ]
        server = _start_server(spec, runs[0].config.storage_grace)
    except Exception as e:
        # The run cannot start here (a sampler that does not load, say): the client raises
        # this error, rather than Spark retrying the task into a "coordinator lost".
        _end_early(spec, study_id, e, None)
        return 0
    return _serve(spec, study_id, runs, server, previous)


def _left_over(spec: ClusterSpec, study: ClusterStudy, previous: RunRecord | None) -> RunConfig:
    """The run config of ``study`` in this attempt: after a lost coordinator, what is left of
    the call's ``n_trials`` (the trials its earlier runs started) and ``timeout``."""
    config = study.config
    if previous is None or not previous.run_ids:
        return config
    from optuna_spark._coordinator._run_stamps import run_of

    runs = set(previous.run_ids)
    study_id = spec.storage.get_study_id_from_name(study.study_name)
    started = sum(1 for t in spec.storage.get_all_trials(study_id) if run_of(t) in runs)
    n_trials = None if config.n_trials is None else max(0, config.n_trials - started)
    timeout = config.timeout
    if timeout is not None and previous.started is not None:
        timeout = max(1e-6, timeout - (time.time() - previous.started))
    return dataclasses.replace(config, n_trials=n_trials, timeout=timeout)


def _end_early(spec: ClusterSpec, study_id: int, error: BaseException, run_id: str | None) -> None:
    """Publish that the run ended before it served: the client raises ``error``."""
    record = RunRecord(state="done", run_id=run_id, error=encode_error(error), cancel=True)
    write_record(spec.storage, study_id, spec.call_id, record)


def _load_run(spec: ClusterSpec, study: ClusterStudy, config: RunConfig) -> Any:
    """The run of ``study`` with ``config``, in this task (nothing written yet)."""
    from optuna_spark._coordinator import StudyRun

    loaded = optuna.load_study(
        study_name=study.study_name,
        storage=spec.storage,
        sampler=study.sampler,
        pruner=study.pruner,
    )
    return StudyRun.from_config(loaded, config)  # writes nothing before add_run


def _start_server(spec: ClusterSpec, storage_grace: float) -> Any:
    """The call's server, started, in this task."""
    from optuna_spark._coordinator import StudyServer
    from optuna_spark._spark._settings import ServerTuning

    tuning = ServerTuning.for_heartbeat(spec.heartbeat_interval)
    server = StudyServer(
        spec.storage,
        host=_bind_host(),
        port=spec.service_port,
        token=spec.token,
        tick_interval=tuning.tick_interval,
        idle_timeout=tuning.idle_timeout,
        storage_grace=storage_grace,
    )
    server.start()
    return server


def _serve(
    spec: ClusterSpec, study_id: int, runs: list[Any], server: Any, previous: RunRecord | None
) -> int:
    """Serve the call's run (or its pool of runs) to the workers until it is over; the
    record says how it ended."""
    from optuna_spark._coordinator import RunPool

    tasks = _TasksOfTheJob()
    pool = RunPool(runs) if spec.pool else None
    record = functools.partial(
        RunRecord,
        host=server.host,
        port=server.port,
        run_id=runs[0].run_id if pool is None else pool.pool_id,
        runs={} if pool is None else {run.study.study_name: run.run_id for run in runs},
        earlier=[] if previous is None else previous.run_ids,
        started=time.time() if previous is None or previous.started is None else previous.started,
    )
    with server:
        if pool is None:
            server.add_run(runs[0])
        else:
            server.add_pool(pool)
        write_record(spec.storage, study_id, spec.call_id, record(state="running"))
        try:
            _supervise(spec, runs, pool, tasks)
        finally:
            if pool is None:
                server.remove_run(runs[0])
            else:
                server.remove_pool(pool)
            errors = [(runs[0], runs[0].error)] if pool is None else pool.errors
            failed, error = next(((r, e) for r, e in errors if e is not None), (None, None))
            done = record(
                state="done",
                error=None if error is None else encode_error(error),
                error_study=None if pool is None or failed is None else failed.study.study_name,
                cancel=tasks.cancel_requested,
            )
            write_record(spec.storage, study_id, spec.call_id, done)
    return sum(int(run.n_finished) for run in runs)


def _supervise(spec: ClusterSpec, runs: list[Any], pool: Any, tasks: _TasksOfTheJob) -> None:
    """Follow the run (or the pool) until it is over; the client winds the tasks down."""
    from optuna_spark._spark._supervise import supervise
    from optuna_spark._spark._supervise import supervise_pool

    follow: dict[str, Any] = {
        "n_workers": spec.n_workers,
        "stuck_grace": spec.stuck_grace,
        "stop_running_trials": runs[0].stop_running_trials,
        "wind_down": None,
    }
    if pool is None:
        supervise(runs[0], tasks, **follow)
    else:
        supervise_pool(pool, tasks, **follow)


def _work(
    spec: ClusterSpec,
    func: Objective | Mapping[str, Objective],
    catch: tuple[type[Exception], ...],
) -> int:
    """Serve the call's run; when its coordinator is lost, wait for the one Spark's retry of
    task 0 starts, and serve that."""
    storage = spec.storage
    study_id = storage.get_study_id_from_name(spec.first.study_name)
    served, lost_run = 0, None
    while True:
        record = _wait_for_run(storage, study_id, spec.call_id, lost_run)
        if record.state == "done" or record.host is None or record.port is None:
            return served
        assert record.run_id is not None
        try:
            return served + run_worker(
                _worker_spec(spec, record), func, catch=catch, info=task_info()
            )
        except OSError:  # the wire's own errors: an objective's are told, not raised
            _logger.warning("The coordinator's task was lost; waiting for its replacement.")
            lost_run = record.run_id


def _wait_for_run(
    storage: BaseStorage, study_id: int, call_id: str, lost_run: str | None
) -> RunRecord:
    """The call's record once a run other than ``lost_run`` serves, or the call is done."""
    deadline = time.monotonic() + WAIT_FOR_COORDINATOR
    while True:
        record = read_record(storage, study_id, call_id)
        if record is not None and (
            record.state == "done" or (record.state == "running" and record.run_id != lost_run)
        ):
            return record
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"The coordinator task did not start within {WAIT_FOR_COORDINATOR:g} s."
            )
        time.sleep(_POLL)


def _worker_spec(spec: ClusterSpec, record: RunRecord) -> WorkerSpec:
    assert record.host is not None and record.port is not None and record.run_id is not None
    endpoint = Endpoint(record.host, record.port, spec.token)
    first = spec.first
    if spec.pool:
        return WorkerSpec(
            endpoint,
            record.run_id,
            heartbeat_interval=spec.heartbeat_interval,
            exit_if_stuck_after=spec.exit_if_stuck_after,
            gc_after_trial=spec.gc_after_trial,
            checkpoint_store=first.config.checkpoint_store,
            keep_checkpoints=first.config.keep_checkpoints,
            pool=True,
            samplers={
                record.runs[study.study_name]: (study.sampler, study.pruner)
                for study in spec.studies
                if study.config.sampling == "workers"
            },
        )
    return WorkerSpec.for_run(
        endpoint,
        record.run_id,
        sampling=first.config.sampling,
        sampler=first.sampler,
        pruner=first.pruner,
        heartbeat_interval=spec.heartbeat_interval,
        exit_if_stuck_after=spec.exit_if_stuck_after,
        gc_after_trial=spec.gc_after_trial,
        checkpoint_store=first.config.checkpoint_store,
        keep_checkpoints=first.config.keep_checkpoints,
    )
