"""Durable trials on embedded Spark: a Python worker killed mid-trial, its trial resumed by
Spark's retry of the task (or another worker) from its last checkpoint."""

from __future__ import annotations

import functools

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint
from tests._helpers import states_of
from tests.spark import _objectives

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def test_a_worker_killed_at_step_10_of_20_resumes_its_trial_from_the_checkpoint(
    spark: object,
) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    executor = SparkExecutor(spark, n_workers=2, resume_lost_trials=1)  # type: ignore[arg-type]
    executor.optimize(study, functools.partial(_objectives.checkpointed, die_at=10), n_trials=4)
    assert states_of(study) == {"COMPLETE": 4}
    trial = study.trials[0]
    x = trial.params["x"]
    assert trial.intermediate_values == {step: x + step for step in range(20)}  # each once
    assert trial.user_attrs["starts"] == [0, 11]  # the second run started after step 10
    (resume,) = trial.system_attrs["optuna_spark:resumes"]
    assert resume["checkpoint_step"] == 10 and "worker lost" in resume["reason"]
    assert trial.system_attrs["optuna_spark:worker"]["attempt"] >= 0
    # The embedded session keeps checkpoints on this machine; finished trials leave none.
    record = trial.system_attrs["optuna_spark:checkpoint"]
    assert not (checkpoint.DEFAULT_DIR / record["artifact_id"]).exists()


def test_a_trial_lost_more_often_than_resume_lost_trials_fails(spark: object) -> None:
    study = optuna.create_study()
    executor = SparkExecutor(spark, n_workers=1, resume_lost_trials=1)  # type: ignore[arg-type]
    executor.optimize(study, _objectives.always_dies, n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert "worker lost" in trial.system_attrs["optuna_spark:fail_reason"]
    assert len(trial.system_attrs["optuna_spark:resumes"]) == 1
