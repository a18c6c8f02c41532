"""The retry policy for lost trials, on its own."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from optuna_spark._coordinator import ATTR_RETRY_OF
from optuna_spark._coordinator import ATTR_RETRY_SKIPPED
from optuna_spark._coordinator import StopReason
from optuna_spark._coordinator._retry import RetryPolicy
from optuna_spark._optuna_adapter import trial_id_of


def _lost(study: optuna.Study) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    return trial


def _fail(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    study.tell(trial, state=TrialState.FAIL)
    return study.trials[trial.number]


def test_a_lost_trial_is_enqueued_with_its_parameters_and_handed_out_next() -> None:
    study = optuna.create_study()
    policy = RetryPolicy(study, enabled=True, n_trials=5)
    trial = _lost(study)
    assert policy.allows(trial_id_of(trial), n_started=1, stopping=None)
    policy.add(policy.create(_fail(study, trial)))
    assert policy.has_pending
    retry = study.ask()  # Optuna hands out the WAITING retry first
    policy.started(trial_id_of(retry))
    assert not policy.has_pending
    assert retry.params == trial.params
    assert study.trials[retry.number].system_attrs[ATTR_RETRY_OF] == trial.number


def test_why_a_retry_is_refused_is_recorded_on_the_trial() -> None:
    study = optuna.create_study()
    policy = RetryPolicy(study, enabled=True, n_trials=2)
    stopping, full = _lost(study), _lost(study)
    assert not policy.allows(trial_id_of(stopping), 1, StopReason.TIMEOUT)
    assert not policy.allows(trial_id_of(full), 2, None)
    attrs = [study.trials[i].system_attrs[ATTR_RETRY_SKIPPED] for i in (0, 1)]
    assert attrs == [
        "the optimization is stopping (timeout)",
        "all n_trials=2 trials have started",
    ]
    assert policy.allows(trial_id_of(stopping), 1, StopReason.EXHAUSTED)  # not stopping others


def test_a_retry_is_never_retried_and_a_disabled_policy_never_retries() -> None:
    study = optuna.create_study()
    policy = RetryPolicy(study, enabled=True, n_trials=None)
    policy.add(policy.create(_fail(study, _lost(study))))
    retry = study.ask()
    assert not policy.allows(trial_id_of(retry), 2, None)
    assert "itself a retry" in study.trials[retry.number].system_attrs[ATTR_RETRY_SKIPPED]
    off = RetryPolicy(study, enabled=False, n_trials=None)
    assert not off.allows(trial_id_of(_lost(study)), 3, None)


def test_retries_never_started_are_failed_when_the_run_ends() -> None:
    study = optuna.create_study()
    policy = RetryPolicy(study, enabled=True, n_trials=None)
    policy.add(policy.create(_fail(study, _lost(study))))
    unstarted = policy.take_unstarted()
    assert not policy.has_pending and not policy.may_come
    policy.fail(unstarted, "timeout")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert "retry not run" in study.trials[1].system_attrs["optuna_spark:fail_reason"]


def test_a_retry_being_decided_may_come() -> None:
    policy = RetryPolicy(optuna.create_study(), enabled=True, n_trials=None)
    assert not policy.may_come
    policy.deciding += 1  # a lost trial whose retry is not decided yet
    assert policy.may_come and not policy.has_pending
