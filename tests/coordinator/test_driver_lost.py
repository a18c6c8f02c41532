"""A driver that dies leaves RUNNING trials; the next run on the same storage fails them."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from optuna_spark import StudyRun
from tests._calls import ask


def test_next_run_fails_trials_of_a_dead_driver_and_spares_live_ones(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    dead = StudyRun(study, n_trials=5, heartbeat_grace=0.5)
    assert ask(dead, 1) is not None
    foreign = study.ask()  # someone else's trial (plain Optuna): never touched

    time.sleep(1.0)  # the dead driver stops stamping
    live = StudyRun(optuna.load_study(study_name="s", storage=storage), heartbeat_grace=60.0)
    assert ask(live, 2) is not None

    again = optuna.load_study(study_name="s", storage=storage)
    trials = again.trials
    assert trials[0].state == TrialState.FAIL
    assert trials[0].system_attrs["optuna_spark:fail_reason"].startswith("driver lost")
    assert trials[1].number == foreign.number and trials[1].state == TrialState.RUNNING
    assert trials[2].state == TrialState.RUNNING

    # A run that stays alive longer than its grace keeps stamping (its monitor ticks), so a
    # third run leaves its trial alone.
    ticking = StudyRun(optuna.load_study(study_name="s", storage=storage), heartbeat_grace=0.5)
    reply = ask(ticking, 3)
    assert reply is not None
    for _ in range(10):
        time.sleep(0.1)
        ticking.heartbeat(3, [reply.trial_id])  # its worker is alive too
        ticking.tick()
    StudyRun(optuna.load_study(study_name="s", storage=storage), heartbeat_grace=60.0)
    final = optuna.load_study(study_name="s", storage=storage).trials
    assert final[2].state == TrialState.RUNNING
    assert final[3].state == TrialState.RUNNING
