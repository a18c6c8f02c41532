"""What an objective returns, judged exactly as ``Study.optimize`` judges it in-process.

The same objectives run in-process and on Spark workers; each trial must end in the same
state with the same values, and the study must go on (or stop) as it does in-process.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def _returns() -> dict[str, Any]:
    return {
        "float": 1.5,
        "int": 3,
        "bool": True,
        "numpy float": np.float32(0.25),
        "numpy int": np.int64(7),
        "numpy 0-d array": np.array(3.0),
        "numpy 1-element array": np.array([2.0]),
        "numpy 2-element array": np.array([1.0, 2.0]),
        "list of 1": [1.0],
        "list of 2": [1.0, 2.0],
        "tuple of 2": (1.0, 2.0),
        "dict": {"a": 1.0},
        "str": "abc",
        "None": None,
        "NaN": math.nan,
        "numpy NaN": np.float64("nan"),
        "list with NaN": [math.nan],
        "inf": math.inf,
        "object": object(),
        "lock": threading.Lock(),
        "empty list": [],
    }


KINDS = list(_returns())


def objective(trial: optuna.trial.BaseTrial) -> Any:
    return _returns()[KINDS[trial.number]]


def _outcomes(study: optuna.Study) -> dict[str, tuple[TrialState, Any]]:
    return {KINDS[t.number]: (t.state, t.values) for t in study.trials}


@pytest.mark.parametrize("directions", [["minimize"], ["minimize", "maximize"]])
def test_every_kind_of_return_value_ends_as_in_process(spark: Any, directions: list[str]) -> None:
    local = optuna.create_study(directions=directions)
    local.optimize(objective, n_trials=len(KINDS))
    remote = optuna.create_study(directions=directions)
    SparkExecutor(spark, n_workers=2).optimize(remote, objective, n_trials=len(KINDS))
    expected = _outcomes(local)
    got = _outcomes(remote)
    assert len(remote.trials) == len(KINDS)  # the study went on, as in-process
    for kind in KINDS:
        e_state, e_values = expected[kind]
        g_state, g_values = got[kind]
        assert g_state == e_state, f"{kind}: {g_state.name} on Spark, {e_state.name} in-process"
        assert g_values == e_values, kind


def digits_as_text(trial: optuna.trial.BaseTrial) -> Any:
    return "1.5" if trial.number == 1 else 0.0


def test_a_value_optuna_itself_cannot_check_stops_the_study_as_in_process(spark: Any) -> None:
    """In-process, Optuna's own check crashes on a str of digits (it is a sequence of
    characters, each castable to float) and optimize raises; on Spark the study stops too,
    with an error that says what was returned, and the trial is FAIL rather than RUNNING."""
    local = optuna.create_study()
    with pytest.raises(Exception):  # noqa: B017 (Optuna raises an AssertionError of its own)
        local.optimize(digits_as_text, n_trials=4)
    remote = optuna.create_study()
    with pytest.raises(TypeError, match=r"'1\.5'"):
        SparkExecutor(spark, n_workers=1).optimize(remote, digits_as_text, n_trials=4)
    assert [t.state for t in remote.trials][:2] == [TrialState.COMPLETE, TrialState.FAIL]
    assert len(remote.trials) < 4
