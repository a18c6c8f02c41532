"""A driver that dies leaves RUNNING trials; the next run on the same study fails them at
once, and never the trials of a run that is alive."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark._coordinator import ATTR_RUN_STAMP_PREFIX
from optuna_spark._coordinator import _run_stamps
from optuna_spark._optuna_adapter import storage_of
from optuna_spark._optuna_adapter import study_id_of
from optuna_spark.remote import StudyRun
from tests._calls import ask
from tests._calls import tell

pytestmark = pytest.mark.timeout(120)


def _set_lease(study: optuna.Study, run: StudyRun, **lease: Any) -> None:
    storage, study_id = storage_of(study), study_id_of(study)
    storage.set_study_system_attr(study_id, ATTR_RUN_STAMP_PREFIX + run.run_id, lease)


def test_a_run_whose_lease_went_stale_loses_its_trials_to_the_next_run(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    dead = StudyRun(study, n_trials=5)
    dead.start()
    assert ask(dead, 1) is not None
    foreign = study.ask()  # someone else's trial (plain Optuna): never touched
    # The dead run's driver was on another machine and stopped renewing a minute ago.
    _set_lease(study, dead, alive=time.time() - 60, done=False, machine="elsewhere", pid=1)

    live = StudyRun(optuna.load_study(study_name="s", storage=storage))
    live.start()
    assert ask(live, 2) is not None

    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert trials[0].state == TrialState.FAIL
    reason = trials[0].system_attrs["optuna_spark:fail_reason"]
    # The clock moved on between stamping the lease and reading it: at least 60 s silent.
    match = re.search(r"silent for (\d+) s", reason)
    assert match is not None and int(match.group(1)) >= 60, reason
    assert trials[1].number == foreign.number and trials[1].state == TrialState.RUNNING
    assert trials[2].state == TrialState.RUNNING


def test_live_runs_never_fail_each_others_trials(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    a = StudyRun(study, n_trials=5)
    a.start()
    assert ask(a, 1) is not None
    b = StudyRun(optuna.load_study(study_name="s", storage=storage))  # alive, this process
    b.start()
    assert ask(b, 2) is not None
    _set_lease(study, b, alive=time.time(), done=False, machine="elsewhere", pid=1)
    StudyRun(optuna.load_study(study_name="s", storage=storage)).start()  # a third one
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [TrialState.RUNNING, TrialState.RUNNING]


def test_a_live_run_fails_the_trials_of_a_run_that_dies_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_run_stamps, "CHECK_EVERY", 0.0)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    live = StudyRun(study, n_trials=5)
    live.start()
    other = StudyRun(optuna.load_study(study_name="s", storage=storage))
    other.start()
    assert ask(other, 1) is not None
    live.tick()
    assert study.trials[0].state == TrialState.RUNNING  # the other run is alive
    _set_lease(study, other, alive=time.time(), done=True)  # it ended, leaving its trial
    live.tick()
    assert study.trials[0].state == TrialState.FAIL


_CRASHING_DRIVER = """
import sys, threading, time, optuna
from optuna_spark.remote import StudyRun, StudyServer, WorkerSpec, run_worker
study = optuna.load_study(study_name="s", storage=sys.argv[1])
server = StudyServer(study._storage).start()
run = StudyRun(study, n_trials=10)
run.start()
server.add_run(run)
def objective(trial):
    trial.suggest_float("x", 0, 1)
    time.sleep(120)  # killed long before
spec = WorkerSpec(server.endpoint, run.run_id)
for _ in range(2):
    threading.Thread(target=run_worker, args=(spec, objective), daemon=True).start()
while run.n_running < 2:
    run.changes.wait_for(lambda: run.n_running >= 2, 1.0)
print("RUNNING", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_then_immediate_restart_leaves_nothing_running(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "postgres":
        storage = request.getfixturevalue("postgres_url")
    else:
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage)
    driver = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_DRIVER, storage], stdout=subprocess.PIPE, text=True
    )
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "RUNNING"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)

    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING] * 2
    run = StudyRun(study, n_trials=3)  # at once: its lease is still fresh
    run.start()
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    reason = study.trials[0].system_attrs["optuna_spark:fail_reason"]
    assert reason.startswith("driver lost: the driver process") and "is gone" in reason
    for conn in range(3):
        reply = ask(run, conn)
        assert reply is not None
        tell(run, conn, reply, "values", 1.0)
    assert run.wait(30)
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 3


_DIES_AS_THE_TRIAL_IS_COMMITTED = """
import os, sys, optuna
from optuna.storages import RDBStorage
from optuna_spark.remote import StudyRun
from optuna_spark.wire.messages import WorkerInfo

class DiesAfterCreatingATrial(RDBStorage):
    # The method Optuna's cached RDB storage calls to create (and commit) a trial.
    def _create_new_trial(self, study_id, template_trial=None):
        super()._create_new_trial(study_id, template_trial)  # committed
        os._exit(9)  # the driver is killed before it writes anything else

study = optuna.load_study(study_name="s", storage=DiesAfterCreatingATrial(sys.argv[1]))
run = StudyRun(study, n_trials=1)
run.start()
run.ask(1, WorkerInfo(host="h", pid=1))
"""


def test_a_trial_committed_just_before_its_driver_died_is_failed_by_the_next_run(
    tmp_path: Path,
) -> None:
    # The run's id is written with the trial itself: no crash window leaves a RUNNING trial
    # that no recovery can attribute (and that TPE's constant liar would avoid forever).
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage)
    died = subprocess.run(
        [sys.executable, "-c", _DIES_AS_THE_TRIAL_IS_COMMITTED, storage],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == 9, died.stderr
    study = optuna.load_study(study_name="s", storage=storage)
    (left,) = study.trials
    assert left.state == TrialState.RUNNING and "optuna_spark:worker" not in left.system_attrs

    StudyRun(study, n_trials=1).start()
    (failed,) = optuna.load_study(study_name="s", storage=storage).trials
    assert failed.state == TrialState.FAIL
    assert "driver lost" in failed.system_attrs["optuna_spark:fail_reason"]
