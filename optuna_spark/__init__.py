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
from optuna_spark.exceptions import CheckpointError
from optuna_spark.exceptions import MessageTooLargeError
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.exceptions import RemoteError
from optuna_spark.exceptions import SparkSetupError
from optuna_spark.exceptions import StorageUnavailableError

if TYPE_CHECKING:
    from optuna_spark._coordinator import get_trial_log
    from optuna_spark._spark._executor import SparkExecutor
    from optuna_spark._spark._resources import TrialResources
    from optuna_spark._storages import RemoteStorage
    from optuna_spark.ablation import LOCOSampler

_LAZY = {
    "get_trial_log": "optuna_spark._coordinator",
    "LOCOSampler": "optuna_spark.ablation",
    "RemoteStorage": "optuna_spark._storages",
    "SparkExecutor": "optuna_spark._spark._executor",
    "TrialResources": "optuna_spark._spark._resources",
}

#: Names that live in :mod:`optuna_spark.remote` (the pieces for running workers outside
#: Spark): asking for them here says where they are.
_MOVED = {"Endpoint", "RemoteTrial", "StudyRun", "StudyServer", "WorkerSpec", "run_worker"}

#: What users need: the executor, the ablation sampler, the storage proxy, the trial log, and
#: every exception the package raises. The pieces for running workers outside Spark live in
#: :mod:`optuna_spark.remote`.
__all__ = [
    "AuthenticationError",
    "CheckpointError",
    "LOCOSampler",
    "MessageTooLargeError",
    "OptunaSparkError",
    "ProtocolError",
    "RemoteError",
    "RemoteStorage",
    "SparkExecutor",
    "SparkSetupError",
    "StorageUnavailableError",
    "TrialResources",
    "get_trial_log",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in _MOVED:
            raise AttributeError(
                f"module {__name__!r} has no attribute {name!r}; import it from "
                f"optuna_spark.remote: `from optuna_spark.remote import {name}`."
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
