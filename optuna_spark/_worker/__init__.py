"""The worker side: what runs in each Spark task (or any process that serves a run).

It imports only the wire, the client (``RemoteStorage``) and Optuna's public API, never the
coordinator: a Spark executor loads nothing of the driver's service.
"""

from optuna_spark._worker._heartbeat import STUCK_EXIT_CODE
from optuna_spark._worker._loop import run_worker
from optuna_spark._worker._trial import RemoteTrial
from optuna_spark.wire.spec import WorkerSpec

__all__ = ["STUCK_EXIT_CODE", "RemoteTrial", "WorkerSpec", "run_worker"]
