"""Asynchronous Optuna studies on long-running Apache Spark tasks.

The sampler and the pruner run on the driver; Spark tasks live for the whole study and keep
asking the driver for the next trial.
"""

from optuna_spark._client import Endpoint
from optuna_spark._service._run import StudyRun
from optuna_spark._worker._loop import WorkerSpec
from optuna_spark._worker._loop import run_worker
from optuna_spark._worker._trial import RemoteTrial
from optuna_spark.ablation import LOCOSampler
from optuna_spark.exceptions import AuthenticationError
from optuna_spark.exceptions import OptunaSparkError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.exceptions import RemoteError
from optuna_spark.exceptions import SparkSetupError
from optuna_spark.executor import SparkExecutor
from optuna_spark.storages import RemoteStorage
from optuna_spark.storages import StorageServer

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "Endpoint",
    "LOCOSampler",
    "OptunaSparkError",
    "ProtocolError",
    "RemoteError",
    "RemoteStorage",
    "RemoteTrial",
    "SparkExecutor",
    "SparkSetupError",
    "StorageServer",
    "StudyRun",
    "WorkerSpec",
    "run_worker",
]
