"""Objectives of the ablation tests (module-level so that Spark ships them by name)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import optuna

from optuna_spark.ablation import get_arm

#: How much leaving out each component raises a minimized loss.
EFFECTS = {"area": 3.0, "floors": 1.0, "noise": 0.0, "head": 0.5, "augment": 0.0}
FEATURES = ["area", "floors", "noise"]
NOISE = 0.2


def loss(trial: optuna.trial.BaseTrial) -> float:
    """A loss with known LOCO effects plus seeded noise shared by the arms of a repeat."""
    arm = get_arm(trial)
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("thread", threading.current_thread().name)
    shared = np.random.default_rng(arm.seed).normal(0.0, 1.0)  # same for every arm
    own = np.random.default_rng([arm.seed, trial.number]).normal(0.0, NOISE)
    time.sleep(0.005)
    return 10.0 + shared + sum(EFFECTS.get(c, 0.0) for c in arm.left_out) + own


def slow_loss(trial: optuna.trial.BaseTrial, n_workers: int = 4) -> float:
    """:func:`loss` on Spark, once ``n_workers`` tasks run trials at the same time.

    The wait (bounded) makes "every worker ran trials" a fact rather than a race with the
    start-up of the tasks' Python workers on a busy machine.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trials = trial.study.get_trials(deepcopy=False)
        partitions = {
            t.system_attrs.get("optuna_spark:worker", {}).get("partition") for t in trials
        }
        if len(partitions - {None}) >= n_workers:
            break
        time.sleep(0.1)
    time.sleep(0.2)
    return loss(trial)
