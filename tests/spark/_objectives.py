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
    time.sleep(0.05)
    return x
