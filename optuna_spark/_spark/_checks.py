"""What ``SparkExecutor.optimize`` checks before anything starts."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._spark import _session
from optuna_spark._spark._pickling import allow_lazy_modules
from optuna_spark._spark._pickling import unpicklable_path
from optuna_spark._validate import check_catch
from optuna_spark.exceptions import SparkSetupError
from optuna_spark.wire import _frames as frames

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def check_optimize_args(
    study: optuna.Study,
    func: Any,
    catch: tuple[type[Exception], ...],
    pickle_func: bool = True,
) -> None:
    """Refuse a bad objective or ``catch`` before Spark starts (the run's config checks
    ``n_trials``, ``timeout`` and callbacks). ``pickle_func=False``: ``func`` was already
    found picklable (one objective shared by many studies is pickled once)."""
    check_catch(catch)
    if optuna_adapter.is_in_optimize_loop(study):
        raise RuntimeError("Nested invocation of `Study.optimize` method isn't allowed.")
    if pickle_func:
        check_picklable("The objective", {"objective": func, "catch": catch}, OBJECTIVE_HINT)


def check_storage_answers(study: optuna.Study) -> None:
    """Read the study once, so that a storage that cannot be reached fails before Spark
    starts (nothing is written)."""
    optuna_adapter.storage_of(study).get_n_trials(optuna_adapter.study_id_of(study))


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
    "Create such objects inside the objective (the study, a SparkSession, open files, locks "
    "and connections cannot be shipped), or pass what they hold instead."
)
SAMPLER_HINT = (
    "With sampling='workers' each worker gets a copy of them: give them no open files, "
    "locks or connections (for example in a constraints_func), or use sampling='driver'."
)


def check_picklable(what: str, objects: dict[str, Any], hint: str) -> None:
    """Pickle ``objects`` as Spark will; when one cannot be, say which part of it."""
    from pyspark import cloudpickle

    allow_lazy_modules()  # optuna.integration.X and other lazily loaded modules
    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    try:
        dumps(tuple(objects.values()))
    except Exception as e:
        paths = (unpicklable_path(obj, name, dumps) for name, obj in objects.items())
        where = next((p for p in paths if p is not None), None)
        part = f": {where} cannot be pickled" if where else ""
        raise SparkSetupError(
            f"{what} cannot be shipped to Spark executors{part} ({e}). {hint}"
        ) from e


def check_tls(certfile: str | None, keyfile: str | None) -> None:
    """Load the TLS certificate and key now, so that a bad one fails before anything runs."""
    if keyfile is not None and certfile is None:
        raise ValueError("tls_keyfile was given without tls_certfile; pass both.")
    if certfile is None:
        return
    try:
        frames.server_ssl_context(certfile, keyfile)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise ValueError(
            f"The TLS certificate {certfile!r} (key {keyfile or 'in the same file'}) cannot be "
            f"loaded: {e}. Pass a PEM certificate chain and its private key."
        ) from e
