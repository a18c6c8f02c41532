"""Objectives the Connect tests ship to the server's executors (importable by name there)."""

# ruff: noqa: F401 (pruned_if_positive is re-exported for the tests)

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna

from tests._workers import objective_pruned_if_positive as pruned_if_positive


def quadratic(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", -10, 10)
    trial.set_user_attr("pid", os.getpid())
    return (x - 2) ** 2


def grid(trial: optuna.trial.BaseTrial) -> float:
    return trial.suggest_float("x", 0, 9) + trial.suggest_int("y", 0, 1)


def key_error_on_odd(trial: optuna.trial.BaseTrial) -> float:
    if trial.number % 2:
        raise KeyError(f"odd trial {trial.number}")
    return float(trial.number)


def zero_division_on_third(trial: optuna.trial.BaseTrial) -> float:
    if trial.number == 2:
        return 1 / 0
    time.sleep(0.05)
    return 0.0


def sleep_half_a_second(trial: optuna.trial.BaseTrial) -> float:
    time.sleep(0.5)
    return trial.suggest_float("x", 0, 1)


def die_once(trial: optuna.trial.BaseTrial, marker: str) -> float:
    """The first trial to run kills its Python worker process; every other one completes."""
    x = trial.suggest_float("x", 0, 1)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return x
    os.close(fd)
    os._exit(1)


def beat_until_cancelled(trial: optuna.trial.BaseTrial, folder: str) -> float:
    """Touch a file of this trial every 50 ms for up to 60 s (the test watches it stop)."""
    path = Path(folder) / f"{trial.number}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        path.write_text(str(time.monotonic()))
        time.sleep(0.05)
    return 0.0
