"""What each long-running Spark task runs: the worker loop, with Spark's view of where it is.

This is the worker's entry point on a Spark executor. It imports the wire, the client and
Optuna's public API only; nothing of the coordinator.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from optuna_spark import _proc
from optuna_spark._worker._loop import Objective
from optuna_spark._worker._loop import run_worker
from optuna_spark._worker._output import quiet_streams
from optuna_spark.wire.spec import WorkerSpec

#: TensorFlow's C++ log level on workers, unless the user set one: errors only, not the INFO
#: and WARNING lines every worker prints when it first imports TensorFlow.
TF_LOG_LEVEL = "2"


def task_info() -> dict[str, Any]:
    """Where this task runs, as Spark sees it, and the GPUs Spark gave it (if any).

    When Spark assigned GPUs to the task, ``CUDA_VISIBLE_DEVICES`` is set to them so that the
    objective's framework sees exactly those devices. TensorFlow's C++ logging is lowered to
    errors unless ``TF_CPP_MIN_LOG_LEVEL`` is set.
    """
    from pyspark import TaskContext

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)

    info: dict[str, Any] = {}
    ctx = TaskContext.get()
    if ctx is None:
        return info
    info.update(
        stage=ctx.stageId(),
        partition=ctx.partitionId(),
        attempt=ctx.attemptNumber(),
        task_attempt_id=ctx.taskAttemptId(),
    )
    executor_id = _executor_id()
    if executor_id is not None:
        info["executor_id"] = executor_id
    gpu = ctx.resources().get("gpu")
    if gpu is not None:
        addresses = [str(a) for a in gpu.addresses]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(addresses)
        info["gpus"] = addresses
    return info


def _executor_id() -> str | None:
    """The id of the executor JVM this Python worker serves (Linux), ``"driver"`` in local mode.

    PySpark does not pass it to Python workers, but the executor's command line carries it
    (``--executor-id N``); in local mode the executor is the driver JVM itself.
    """
    pid: int | None = os.getppid()
    for _ in range(4):
        args = None if pid is None else _proc.command_line(pid)
        if pid is None or args is None:
            return None
        if b"--executor-id" in args:
            i = args.index(b"--executor-id")
            return args[i + 1].decode() if i + 1 < len(args) else None
        if b"org.apache.spark.deploy.SparkSubmit" in args:
            return "driver"
        pid = _proc.parent(pid)
    return None


def make_task(
    spec: WorkerSpec,
    func: Objective | Mapping[str, Objective],
    catch: tuple[type[Exception], ...],
    quiet_log: str | None = None,
) -> Any:
    """The function given to ``mapPartitions``: one worker loop per task.

    The objective travels pickled inside the task and is unpickled only once the task has set
    up its process (GPUs, TensorFlow's log level, quiet streams): importing the objective's
    modules may print, or start TensorFlow.

    Args:
        spec: The run to serve.
        func: The objective (or, for a pool, each study's by its name).
        catch: Exception types that fail a trial without stopping the study.
        quiet_log: Set when the executors' streams are the driver's terminal (local mode):
            what trials print then reaches the driver's echo only, and what is printed
            outside trials goes to this file (see ``_output.quiet_streams``).
    """
    from pyspark import cloudpickle

    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    payload = dumps((func, catch))

    def task(_: Iterable[Any]) -> Iterator[int]:
        if quiet_log is not None:
            quiet_streams(quiet_log)
        info = task_info()
        objective, catching = pickle.loads(payload)
        yield run_worker(spec, objective, catch=catching, info=info)

    return task
