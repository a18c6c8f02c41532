"""Shipping objectives: lazily loaded modules go by reference, and what cannot be pickled is
named by where it was found (no Spark session needed: Spark's own cloudpickle is used)."""

from __future__ import annotations

import pickle
import threading
from types import ModuleType
from typing import Any

import optuna
import pytest

from optuna_spark import SparkSetupError
from optuna_spark._spark._checks import OBJECTIVE_HINT
from optuna_spark._spark._checks import check_picklable


def _ship(obj: Any) -> Any:
    from pyspark import cloudpickle

    return pickle.loads(cloudpickle.dumps(obj))


def test_an_objective_naming_optuna_integration_ships_as_it_is() -> None:
    # optuna-examples' spelling (optuna.integration.X): a lazily loaded module whose class
    # subclasses ModuleType. The module object itself is what failed to pickle; naming it does
    # not need optuna-integration installed.
    def objective(trial: Any) -> Any:
        return optuna.integration

    check_picklable("The objective", {"objective": objective}, OBJECTIVE_HINT)
    shipped = _ship(objective)
    assert shipped(None) is optuna.integration
    assert type(optuna.integration) is not ModuleType  # still the case this test is about


class _Holder:
    def __init__(self) -> None:
        self.name = "fine"
        self.conn = threading.Lock()


def test_the_error_names_the_part_that_cannot_be_pickled() -> None:
    holder = _Holder()

    def objective(trial: Any) -> float:
        return 0.0 if holder.conn else 1.0

    with pytest.raises(SparkSetupError) as raised:
        check_picklable("The objective", {"objective": objective}, OBJECTIVE_HINT)
    message = str(raised.value)
    assert "objective (its variable 'holder').conn (a lock) cannot be pickled" in message
    assert "Create such objects inside the objective" in message


def test_a_global_that_cannot_be_pickled_is_named_too() -> None:
    # A script's objective (module __main__) is shipped by value, with the globals it uses.
    script = {"__name__": "__main__", "threading": threading}
    exec(
        "LOCK = threading.Lock()\ndef objective(trial):\n    with LOCK:\n        return 0.0\n",
        script,
    )
    with pytest.raises(SparkSetupError, match=r"objective \(its global 'LOCK'\) \(a lock\)"):
        check_picklable("The objective", {"objective": script["objective"]}, OBJECTIVE_HINT)
