"""Asynchronous Optuna studies on long-running Apache Spark tasks.

The sampler and the pruner run on the driver; Spark tasks live for the whole study and keep
asking the driver for the next trial.

Names are imported on first use, so that ``import optuna_spark`` is cheap and a Spark
executor that imports the worker side never loads the coordinator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any

from optuna_spark._version import __version__ as __version__
from optuna_spark.exceptions import AuthenticationError
from optuna_spark.exceptions import MessageTooLargeError
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.exceptions import RemoteError
from optuna_spark.exceptions import SparkSetupError

if TYPE_CHECKING:
    from optuna_spark.ablation import LOCOSampler
    from optuna_spark.coordinator import StorageServer as StorageServer
    from optuna_spark.coordinator import StudyRun as StudyRun
    from optuna_spark.coordinator import StudyServer as StudyServer
    from optuna_spark.coordinator import get_trial_log
    from optuna_spark.spark import SparkExecutor
    from optuna_spark.storages import RemoteStorage
    from optuna_spark.wire import Endpoint as Endpoint
    from optuna_spark.worker import RemoteTrial as RemoteTrial
    from optuna_spark.worker import WorkerSpec as WorkerSpec
    from optuna_spark.worker import run_worker as run_worker

_LAZY = {
    "Endpoint": "optuna_spark.wire",
    "get_trial_log": "optuna_spark.coordinator",
    "LOCOSampler": "optuna_spark.ablation",
    "RemoteStorage": "optuna_spark.storages",
    "RemoteTrial": "optuna_spark.worker",
    "SparkExecutor": "optuna_spark.spark",
    "StorageServer": "optuna_spark.coordinator",
    "StudyRun": "optuna_spark.coordinator",
    "StudyServer": "optuna_spark.coordinator",
    "WorkerSpec": "optuna_spark.worker",
    "run_worker": "optuna_spark.worker",
}

#: What users need: the executor, the ablation sampler, the storage proxy, the trial log, and
#: every exception the package raises. The pieces for running workers outside Spark live in
#: :mod:`optuna_spark.remote` (their names here still import, for existing code).
__all__ = [
    "AuthenticationError",
    "LOCOSampler",
    "MessageTooLargeError",
    "OptunaSparkError",
    "ProtocolError",
    "RemoteError",
    "RemoteStorage",
    "SparkExecutor",
    "SparkSetupError",
    "get_trial_log",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
