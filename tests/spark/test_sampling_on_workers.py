"""``SparkExecutor(sampling="workers")``: Spark tasks sample with their own sampler copies."""

from __future__ import annotations

import os
import threading

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark import SparkSetupError

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def _pruned_if_positive(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", -1, 1)
    trial.set_user_attr("pid", os.getpid())
    for step in range(3):
        trial.report(x, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


class _PruneAboveZero(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step == 1 and trial.intermediate_values[0] > 0


def test_tpe_on_the_workers_runs_exactly_n_trials_pruned_by_the_driver(spark: object) -> None:
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        pruner=_PruneAboveZero(),
    )
    SparkExecutor(spark, n_workers=2, sampling="workers").optimize(  # type: ignore[arg-type]
        study, _pruned_if_positive, n_trials=16
    )
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(16))
    assert {t.user_attrs["pid"] for t in trials}.isdisjoint({os.getpid()})
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(pruned) + len(complete) == 16
    assert all(t.params["x"] > 0 and t.last_step == 1 for t in pruned)
    assert all(t.params["x"] <= 0 for t in complete)


def test_a_central_only_sampler_is_refused_before_spark_starts() -> None:
    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"x": [0.0, 1.0]}))
    executor = SparkExecutor(n_workers=2, sampling="workers")
    with pytest.raises(ValueError, match="GridSampler cannot sample on the workers"):
        executor.optimize(study, _pruned_if_positive, n_trials=2)
    assert executor._spark is None  # no session was started
    assert study.trials == []


def test_an_unpicklable_sampler_gets_a_clear_error_before_spark_starts() -> None:
    sampler = optuna.samplers.RandomSampler()
    sampler.lock = threading.Lock()  # type: ignore[attr-defined]
    study = optuna.create_study(sampler=sampler)
    executor = SparkExecutor(n_workers=2, sampling="workers")
    with pytest.raises(SparkSetupError, match=r"sampler and pruner cannot be shipped.*'driver'"):
        executor.optimize(study, _pruned_if_positive, n_trials=2)
    assert executor._spark is None
    assert study.trials == []


def test_an_unknown_placement_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="sampling must be 'driver' or 'workers'"):
        SparkExecutor(sampling="everywhere")  # type: ignore[arg-type]
