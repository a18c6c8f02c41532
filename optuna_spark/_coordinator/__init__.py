"""The coordinator: the run of a study (sampler, pruner, bookkeeping) and the server workers
reach it through.

It lives on the Spark driver (or wherever ``optimize`` runs); workers never import it.
"""

from optuna_spark._coordinator._attrs import ATTR_FAIL_REASON
from optuna_spark._coordinator._attrs import ATTR_INTERRUPTED
from optuna_spark._coordinator._attrs import ATTR_LOG
from optuna_spark._coordinator._attrs import ATTR_PRUNED_AT
from optuna_spark._coordinator._attrs import ATTR_RETRY_OF
from optuna_spark._coordinator._attrs import ATTR_RETRY_SKIPPED
from optuna_spark._coordinator._attrs import ATTR_RUN_STAMP_PREFIX
from optuna_spark._coordinator._attrs import ATTR_TRACEBACK
from optuna_spark._coordinator._attrs import ATTR_WORKER
from optuna_spark._coordinator._output import get_trial_log
from optuna_spark._coordinator._pool import RunPool
from optuna_spark._coordinator._run import StudyRun
from optuna_spark._coordinator._server import StudyServer
from optuna_spark._coordinator._state import Phase
from optuna_spark._coordinator._state import StopReason

__all__ = [
    "ATTR_FAIL_REASON",
    "ATTR_INTERRUPTED",
    "ATTR_LOG",
    "ATTR_PRUNED_AT",
    "ATTR_RETRY_OF",
    "ATTR_RETRY_SKIPPED",
    "ATTR_RUN_STAMP_PREFIX",
    "ATTR_TRACEBACK",
    "ATTR_WORKER",
    "Phase",
    "RunPool",
    "StopReason",
    "StudyRun",
    "StudyServer",
    "get_trial_log",
]
