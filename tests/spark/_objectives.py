"""Objectives shipped to Spark executors by the tests (module-level so they pickle by name)."""

from __future__ import annotations

import os
import time

import optuna


def quadratic(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", -10, 10)
    trial.set_user_attr("pid", os.getpid())
    return (x - 2) ** 2


def die_once(trial: optuna.trial.BaseTrial, marker: str) -> float:
    """The first trial kills its Python worker mid-trial; the marker file makes it once."""
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    wait_for_retried_attempt(trial)
    time.sleep(0.05)
    return x


def always_dies(trial: optuna.trial.BaseTrial) -> float:
    os._exit(1)


def wait_for_retried_attempt(trial: optuna.trial.BaseTrial, timeout: float = 60.0) -> None:
    """Block until some trial ran in a retried Spark task attempt (or ``timeout`` passes).

    Makes tests about task retries deterministic: the surviving worker cannot finish the
    study before the retried task has started asking for trials.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in trial.study.get_trials(deepcopy=False):
            if t.system_attrs.get("optuna_spark:worker", {}).get("attempt", 0) >= 1:
                return
        time.sleep(0.1)
