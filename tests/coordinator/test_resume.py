"""Lost trials that resume: same trial, same parameters, one curve, before anything new."""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

from optuna_spark._coordinator import StopReason
from optuna_spark.remote import StudyRun
from optuna_spark.wire import messages as m
from tests._calls import ask
from tests._calls import suggest_float
from tests._calls import tell


def _report(run: StudyRun, conn: int, reply: m.AskReply, value: float, step: int) -> None:
    run.report(conn, reply.trial_id, value, step)


def test_a_lost_trial_resumes_on_the_next_ask_with_its_number_parameters_and_reports() -> None:
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    run = StudyRun(study, n_trials=2, resume_lost_trials=1)
    run.start()
    first = ask(run, 1)
    assert first is not None
    x = suggest_float(run, 1, first)
    for step in range(3):
        _report(run, 1, first, float(step), step)
    run.connection_lost(1)
    assert study.trials[0].state == TrialState.RUNNING  # suspended, not failed
    resumed = ask(run, 2)
    assert resumed is not None
    assert (resumed.trial_id, resumed.number) == (first.trial_id, first.number)
    assert suggest_float(run, 2, resumed) == x  # the same value, not sampled again
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a re-reported step is accepted without a word
        for step in range(5):
            _report(run, 2, resumed, 10.0 + step, step)
    tell(run, 2, resumed, "values", 1.0)
    second = ask(run, 2)
    assert second is not None and second.number == 1  # n_trials counts the resumed trial once
    tell(run, 2, second, "values", 2.0)
    assert run.wait(30) and ask(run, 2) is None
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == {0: 0.0, 1: 1.0, 2: 2.0, 3: 13.0, 4: 14.0}
    (resume,) = trial.system_attrs["optuna_spark:resumes"]
    assert resume["last_step"] == 2 and "connection to the driver closed" in resume["reason"]
    assert resume["worker"]["host"] == "test-host"
    assert len(study.trials) == 2


def test_the_old_worker_learns_that_its_trial_moved_on() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=1, heartbeat_grace=30.0, resume_lost_trials=1)
    run.start()
    first = ask(run, 1)
    assert first is not None
    run.connection_lost(1)
    resumed = ask(run, 2)
    assert resumed is not None
    try:
        tell(run, 1, first, "values", 5.0)
    except optuna.exceptions.UpdateFinishedTrialError as e:
        assert "resumes on another worker" in str(e)
    else:
        raise AssertionError("the lost worker's tell was accepted")
    assert run.heartbeat(1, [first.trial_id]).gone == [first.trial_id]
    tell(run, 2, resumed, "values", 1.0)
    assert run.wait(30)
    assert study.trials[0].value == 1.0


def test_a_trial_lost_more_often_than_allowed_fails() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=1, resume_lost_trials=2)
    run.start()
    for conn in (1, 2, 3):
        reply = ask(run, conn)
        assert reply is not None and reply.number == 0
        run.connection_lost(conn)
    assert run.wait(30) and ask(run, 4) is None
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert "worker lost" in trial.system_attrs["optuna_spark:fail_reason"]
    assert len(trial.system_attrs["optuna_spark:resumes"]) == 2


def test_a_suspended_trial_fails_when_the_run_stops() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=5, resume_lost_trials=3)
    run.start()
    reply = ask(run, 1)
    assert reply is not None
    run.connection_lost(1)
    assert not run.done  # waiting for a worker to resume it
    run.stop(StopReason.STUDY)
    assert run.wait(30)
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert "not resumed" in trial.system_attrs["optuna_spark:fail_reason"]


def test_without_resumes_a_lost_trial_fails_as_before() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=1)
    run.start()
    reply = ask(run, 1)
    assert reply is not None
    run.connection_lost(1)
    assert run.wait(30)
    assert study.trials[0].state == TrialState.FAIL
    assert "optuna_spark:resumes" not in study.trials[0].system_attrs


def _on(executor: str) -> m.WorkerInfo:
    return m.WorkerInfo(host="test-host", pid=0, executor_id=executor)


def test_a_decommissioning_executors_trial_saves_hands_back_and_resumes_elsewhere() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=1, resume_lost_trials=1)
    run.start()
    first = run.ask(1, _on("e1"))
    assert first is not None
    assert run.executors() == {"e1"}
    assert run.should_prune(1, first.trial_id) == m.PruneReply(False, False)
    run.decommission("e1")
    assert run.should_prune(1, first.trial_id) == m.PruneReply(False, True)
    assert run.heartbeat(1, [first.trial_id]) == m.HeartbeatReply([], [first.trial_id])
    run.hand_back(1, first.trial_id, 4)
    assert run.ask(1, _on("e1")) is None  # a decommissioning executor gets no new trial
    again = run.ask(2, _on("e2"))
    assert again is not None and again.number == first.number
    assert run.should_prune(2, again.trial_id) == m.PruneReply(False, False)
    tell(run, 2, again, "values", 1.0)
    assert run.wait(30)
    (resume,) = study.trials[0].system_attrs["optuna_spark:resumes"]
    assert resume["reason"].startswith("handed back: executor e1 is decommissioning")


def test_hand_backs_do_not_use_up_the_resumes_of_lost_workers() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=1, resume_lost_trials=1)
    run.start()
    reply = run.ask(1, _on("e1"))
    assert reply is not None
    for conn, executor in ((2, "e2"), (3, "e3")):
        run.decommission(f"e{conn - 1}")
        run.hand_back(conn - 1, reply.trial_id, 0)
        reply = run.ask(conn, _on(executor))
        assert reply is not None
    run.connection_lost(3)  # a real loss: the one resume it may have
    reply = run.ask(4, _on("e4"))
    assert reply is not None and reply.number == 0
    tell(run, 4, reply, "values", 1.0)
    assert run.wait(30)
    assert study.trials[0].state == TrialState.COMPLETE
    assert len(study.trials[0].system_attrs["optuna_spark:resumes"]) == 3


def test_only_the_worker_holding_the_trial_records_its_checkpoint() -> None:
    # A worker taken for lost (a partition, a paused process) that saves late must not
    # overwrite the checkpoint of the run that resumed its trial.
    study = optuna.create_study()
    run = StudyRun(study, n_trials=1, resume_lost_trials=1)
    run.start()
    first = ask(run, 1)
    assert first is not None
    run.connection_lost(1)
    resumed = ask(run, 2)
    assert resumed is not None
    late = m.SetCheckpoint(run.run_id, first.trial_id, {"artifact_id": "late", "step": 9})
    try:
        run.call_trial(1, late)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass
    else:
        raise AssertionError("a lost worker's checkpoint was recorded")
    run.call_trial(
        2, m.SetCheckpoint(run.run_id, resumed.trial_id, {"artifact_id": "a", "step": 3})
    )
    assert study.trials[0].system_attrs["optuna_spark:checkpoint"]["artifact_id"] == "a"
    tell(run, 2, resumed, "values", 1.0)
    assert run.wait(30)
