"""What each long-running Spark task runs: the worker loop, with Spark's view of where it is.

This is the worker's entry point on a Spark executor. It imports the wire, the client and
Optuna's public API only; nothing of the coordinator.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

from optuna_spark.worker._loop import Objective
from optuna_spark.worker._loop import WorkerSpec
from optuna_spark.worker._loop import run_worker

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
    pid = os.getppid()
    for _ in range(4):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if b"--executor-id" in args:
            i = args.index(b"--executor-id")
            return args[i + 1].decode() if i + 1 < len(args) else None
        if b"org.apache.spark.deploy.SparkSubmit" in args:
            return "driver"
        pid = parent
    return None


def make_task(spec: WorkerSpec, func: Objective, catch: tuple[type[Exception], ...]) -> Any:
    """The function given to ``mapPartitions``: one worker loop per task."""

    def task(_: Iterable[Any]) -> Iterator[int]:
        yield run_worker(spec, func, catch=catch, info=task_info())

    return task
