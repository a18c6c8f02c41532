"""Objectives and worker entry points that spawned worker processes can import.

Everything here is module-level so that ``multiprocessing``'s ``spawn`` context can pickle it
by reference. Objectives record where they ran (pid and thread name) in user attributes, so
the tests can prove that no objective ever runs in the driver.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import optuna

from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker

GRID_X = [-1.0, 0.0, 0.5, 1.0]
GRID_C = ["a", "b", "c"]
GRID: dict[str, list[Any]] = {"x": GRID_X, "c": GRID_C}


class FlakyError(RuntimeError):
    """What the tests put in ``catch``."""


def _where(trial: RemoteTrial) -> None:
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("thread", threading.current_thread().name)


def objective_basic(trial: RemoteTrial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 5)
    _where(trial)
    for step in range(3):
        trial.report(x + step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x**2 + y


def objective_pruned_if_positive(trial: RemoteTrial) -> float:
    """Reports x at steps 0, 1, 2 and stops when the pruner says so (after step 1 for x > 0)."""
    x = trial.suggest_float("x", -1, 1)
    for step in range(3):
        trial.report(x, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def objective_grid(trial: RemoteTrial) -> float:
    x = trial.suggest_float("x", -1, 1)
    c = trial.suggest_categorical("c", GRID_C)
    _where(trial)
    time.sleep(0.002)  # let the workers overlap
    return x + len(c)


def objective_flaky(trial: RemoteTrial) -> float:
    x = trial.suggest_float("x", 0, 1)
    if trial.number % 3 == 0:
        raise FlakyError(f"flaky trial {trial.number}")
    return x


def objective_uncaught(trial: RemoteTrial) -> float:
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 3:
        raise ValueError("boom from the objective")
    time.sleep(0.005)
    return x


def objective_die(trial: RemoteTrial) -> float:
    """Trial 2's process dies in the middle of the trial, after a report."""
    x = trial.suggest_float("x", 0, 1)
    _where(trial)
    trial.report(x, 0)
    if trial.number == 2:
        os._exit(17)
    time.sleep(0.01)
    return x


def objective_nan_none(trial: RemoteTrial) -> Any:
    x = trial.suggest_float("x", 0, 1)
    if trial.number % 3 == 0:
        return math.nan
    if trial.number % 3 == 1:
        return None
    return x


def process_main(spec: WorkerSpec, objective: Any, catch: tuple[type[Exception], ...]) -> None:
    """What a spawned worker process runs."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_worker(spec, objective, catch=catch)


def objective_stuck(trial: RemoteTrial) -> float:
    """Trial 0 never returns: its worker must end itself once the driver gave up on it."""
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 0:
        time.sleep(60)
    return x


def add_trial_from_process(
    storage: optuna.storages.BaseStorage, study_name: str, value: float
) -> None:
    """Runs in a spawned process with an unpickled ``RemoteStorage``."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    study.add_trial(optuna.trial.create_trial(value=value))


def objective_chatty(trial: RemoteTrial) -> float:
    """Prints, warns and logs (through Python's last-resort handler) once per trial."""
    import logging
    import warnings

    x = trial.suggest_float("x", 0, 1)
    print(f"hello from trial {trial.number}")
    warnings.warn(f"careful in trial {trial.number}", stacklevel=1)
    logging.getLogger("user.model").warning("loss is %.1f", 1.5)
    return x


def objective_very_chatty(trial: RemoteTrial) -> float:
    """Prints 2 MiB in 1 KiB lines, then one last line."""
    line = "x" * 1023
    for _ in range(2048):
        print(line)
    print("the end")
    return 0.0


def objective_checkpointed(trial: optuna.Trial) -> float:
    """Six steps, a checkpoint after each; resumes from its checkpoint and records the step
    each of its runs started at (user attribute ``starts``).

    Environment (so that spawned processes and drivers in subprocesses see it): with
    ``OPTUNA_SPARK_TEST_DIE_AT=k`` the first run of trial 0 kills its process after saving
    step ``k``; with ``OPTUNA_SPARK_TEST_HANG_AT=k`` it creates the file
    ``OPTUNA_SPARK_TEST_MARK`` there and hangs.
    """
    from optuna_spark import checkpoint

    x = trial.suggest_float("x", 0, 1)
    ckpt = checkpoint.load(trial)
    start = 0 if ckpt is None else ckpt.step + 1
    if ckpt is not None:
        assert (ckpt.path / "state.txt").read_text() == f"{x}:{ckpt.step}"
    trial.set_user_attr("starts", [*trial.user_attrs.get("starts", []), start])
    die_at = int(os.environ.get("OPTUNA_SPARK_TEST_DIE_AT", "-1"))
    hang_at = int(os.environ.get("OPTUNA_SPARK_TEST_HANG_AT", "-1"))
    first_run = ckpt is None and trial.number == 0
    with tempfile.TemporaryDirectory() as tmp:
        for step in range(start, 6):
            trial.report(x + step, step)
            Path(tmp, "state.txt").write_text(f"{x}:{step}")
            checkpoint.save(trial, tmp, step=step)
            if first_run and step == die_at:
                os._exit(17)
            if first_run and step == hang_at:
                Path(os.environ["OPTUNA_SPARK_TEST_MARK"]).touch()
                threading.Event().wait()
    return x
