"""StudyRun when things go wrong: failing samplers, lost trials and their retries."""

from __future__ import annotations

import threading
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark._coordinator import StopReason
from optuna_spark.ablation import LOCOSampler
from optuna_spark.remote import StudyRun
from optuna_spark.wire.messages import AskReply
from tests._calls import ask
from tests._calls import suggest_categorical
from tests._calls import suggest_float
from tests._calls import tell


class _BrokenSampler(optuna.samplers.RandomSampler):
    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        raise RuntimeError("sampler bug")


def _suggest_x(run: StudyRun, conn: int, reply: AskReply) -> None:
    suggest_float(run, conn, reply)


def test_a_failing_sampler_ends_the_run_with_its_error_and_leaves_nothing_running() -> None:
    study = optuna.create_study(sampler=_BrokenSampler())
    run = StudyRun(study, n_trials=5)
    run.start()
    assert ask(run, 1) is None
    assert isinstance(run.error, RuntimeError) and "sampler bug" in str(run.error)
    assert run.wait(30)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert "sampler failed" in study.trials[0].system_attrs["optuna_spark:fail_reason"]


def test_a_lost_trial_is_retried_once_with_its_parameters() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=3, retry_lost_trials=True)
    run.start()
    first = ask(run, 1)
    assert first is not None
    _suggest_x(run, 1, first)
    run.connection_lost(1)
    retry = ask(run, 2)
    assert retry is not None
    tell(run, 2, retry, "values", 1.0)
    trials = study.trials
    assert trials[1].params == trials[0].params
    assert trials[1].system_attrs["optuna_spark:retry_of"] == 0
    assert trials[1].state == TrialState.COMPLETE


def test_no_retry_when_n_trials_have_all_started() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=2, retry_lost_trials=True)
    run.start()
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    _suggest_x(run, 1, a)
    _suggest_x(run, 2, b)
    tell(run, 1, a, "values", 1.0)
    run.connection_lost(2)
    assert run.wait(30)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert "n_trials=2" in study.trials[1].system_attrs["optuna_spark:retry_skipped"]


def test_no_retry_once_the_run_is_stopping() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=10, retry_lost_trials=True)
    run.start()
    a = ask(run, 1)
    assert a is not None
    run.stop()
    run.connection_lost(1)
    assert run.wait(30)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert "stopping" in study.trials[0].system_attrs["optuna_spark:retry_skipped"]


def test_retry_runs_after_the_sampler_has_handed_out_every_point() -> None:
    sampler = LOCOSampler(components=["augment"], seed=0)  # two arms: base, augment
    study = optuna.create_study(sampler=sampler)
    run = StudyRun(study, retry_lost_trials=True)
    run.start()
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    for conn, reply in ((1, a), (2, b)):
        suggest_categorical(run, conn, reply, "loco_arm", list(sampler.arms))
    tell(run, 1, a, "values", 1.0)
    run.connection_lost(2)
    assert not run.done  # the lost arm still has to run
    retry = ask(run, 3)
    assert retry is not None
    suggest_categorical(run, 3, retry, "loco_arm", list(sampler.arms))
    tell(run, 3, retry, "values", 2.0)
    assert run.wait(30) and ask(run, 3) is None
    arms = [t.params["loco_arm"] for t in study.trials]
    assert arms[2] == arms[1] and sorted(arms[:2]) == sorted(sampler.arms)
    assert study.trials[2].state == TrialState.COMPLETE


@pytest.mark.parametrize("lost", [0, 3])
def test_grid_retry_reruns_the_same_point(lost: int) -> None:
    grid = {"x": [0.0, 0.25, 0.5, 0.75]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    run = StudyRun(study, retry_lost_trials=True)
    run.start()
    replies = [ask(run, i) for i in range(4)]
    for i, reply in enumerate(replies):
        assert reply is not None
        _suggest_x(run, i, reply)
    for i, reply in enumerate(replies):
        assert reply is not None
        if i == lost:
            run.connection_lost(i)
        else:
            tell(run, i, reply, "values", 0.0)
    retry = ask(run, 9)
    assert retry is not None
    _suggest_x(run, 9, retry)
    tell(run, 9, retry, "values", 0.0)
    assert run.wait(30)
    xs = [t.params["x"] for t in study.trials]
    assert xs[4] == xs[lost]
    assert sorted(xs[:4]) == grid["x"]


def test_an_error_ends_the_run_even_with_a_retry_waiting() -> None:
    grid = {"x": [0.0, 1.0]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    run = StudyRun(study, retry_lost_trials=True)
    run.start()
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    assert ask(run, 3) is None  # every point has started
    run.connection_lost(1)
    assert run.flush(30)  # a retry of a's point waits
    error = ("ValueError", "boom", "Traceback ...")
    tell(run, 2, b, "failed", error=error, caught=False)
    assert run.wait(30) and isinstance(run.error, ValueError)
    assert ask(run, 3) is None
    states = [t.state for t in study.trials]
    assert TrialState.WAITING not in states and TrialState.RUNNING not in states
    assert "retry not run" in study.trials[2].system_attrs["optuna_spark:fail_reason"]


def test_an_error_after_n_trials_started_still_stops_the_running_trials() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=2)
    run.start()
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    assert ask(run, 3) is None
    tell(run, 1, a, "failed", error=("ValueError", "boom", ""), caught=False)
    assert run.should_prune(2, b.trial_id).prune is True  # told to stop, as with any error


def test_a_storage_error_while_failing_a_lost_trial_ends_the_run_with_it() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=5)
    run.start()
    a = ask(run, 1)
    assert a is not None
    study.tell(a.number, 1.0)  # someone else finished it
    run.connection_lost(1)
    assert run.wait(30) and run.n_finished == 1
    assert isinstance(run.error, optuna.exceptions.UpdateFinishedTrialError)


class _BlockingSampler(optuna.samplers.RandomSampler):
    """Holds study.ask() until the test lets it go."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.entered = threading.Event()
        self.release = threading.Event()

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.entered.set()
        assert self.release.wait(10)


@pytest.mark.parametrize("how", ["close", "fail_running"])
def test_a_trial_being_made_when_the_run_is_closed_is_failed_not_left_running(how: str) -> None:
    sampler = _BlockingSampler()
    study = optuna.create_study(sampler=sampler)
    run = StudyRun(study, n_trials=5)
    run.start()
    replies: list[Any] = []
    asking = threading.Thread(target=lambda: replies.append(ask(run, 1)))
    asking.start()
    assert sampler.entered.wait(10)
    if how == "close":
        run.close("the Spark job ended")
    else:
        run.stop()
        run.fail_running("interrupted: KeyboardInterrupt on the driver")
    sampler.release.set()
    asking.join(10)
    assert replies == [None]  # the worker is told to stop
    assert run.wait(30)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_a_storage_error_after_the_sampler_fails_the_trial_and_ends_the_run() -> None:
    class _FailingWrites(optuna.storages.InMemoryStorage):
        def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
            if key == "optuna_spark:worker":
                raise RuntimeError("the database went away")
            super().set_trial_system_attr(trial_id, key, value)

    study = optuna.create_study(storage=_FailingWrites())
    run = StudyRun(study, n_trials=5)
    run.start()
    assert ask(run, 1) is None
    assert isinstance(run.error, RuntimeError) and run.wait(30)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_a_callback_stopping_the_study_it_closes_over_interrupts_running_trials() -> None:
    study = optuna.create_study()
    run = StudyRun(study, n_trials=10, callbacks=[lambda s, t: study.stop()])
    run.start()
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    tell(run, 1, a, "values", 1.0)
    assert run.stop_reason is StopReason.STUDY
    assert run.should_prune(2, b.trial_id).prune is True  # told to stop, as Study.optimize would
