"""What ``SparkExecutor.optimize`` checks before anything starts."""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._validate import check_positive
from optuna_spark.exceptions import SparkSetupError
from optuna_spark.spark import _session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def check_optimize_args(
    study: optuna.Study,
    func: Any,
    n_trials: int | None,
    timeout: float | None,
    catch: tuple[type[Exception], ...],
) -> None:
    """Refuse bad input before Spark starts (``StudyRun`` checks the numbers again)."""
    if not isinstance(catch, tuple):
        raise TypeError(
            f"The catch argument is of type '{type(catch).__name__}' but must be a tuple."
        )
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int)):
        raise TypeError(f"n_trials must be an int or None, but got {n_trials=}.")
    check_positive("n_trials", n_trials, allow_zero=True)
    check_positive("timeout", timeout)
    if optuna_adapter.is_in_optimize_loop(study):
        raise RuntimeError("Nested invocation of `Study.optimize` method isn't allowed.")
    check_picklable("The objective", (func, catch), OBJECTIVE_HINT)


def warn_if_no_task_retries(spark: SparkSession) -> None:
    master = _session.master(spark) or ""
    if re.fullmatch(r"local(\[(\d+|\*)\])?", master):
        warnings.warn(
            f"The Spark master {master!r} never retries a failed task, so a worker that dies "
            "(or exits because its trial was stuck) ends its slot for the rest of the study. "
            "Use a master such as 'local[4,4]' (4 slots, 4 attempts per task).",
            stacklevel=3,
        )


OBJECTIVE_HINT = (
    "Objectives must not capture the study, a SparkSession/SparkContext, open files, locks or "
    "connections; create those inside the objective."
)
SAMPLER_HINT = (
    "With sampling='workers' each worker gets a copy of them: give them no open files, "
    "locks or connections (for example in a constraints_func), or use sampling='driver'."
)


def check_picklable(what: str, objects: tuple[Any, ...], hint: str) -> None:
    from pyspark import cloudpickle

    try:
        cloudpickle.dumps(objects)  # type: ignore[no-untyped-call]
    except Exception as e:
        raise SparkSetupError(
            f"{what} cannot be shipped to Spark executors because it cannot be pickled: "
            f"{e}. {hint}"
        ) from e
