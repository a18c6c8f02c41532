"""Objectives written as optuna-examples writes them (scikit-learn, and LightGBM and XGBoost
pruning callbacks spelled ``optuna.integration.X``) run on embedded Spark with only the
``optimize`` call changed, and prune exactly as they do in-process.

The script runs as a user's would (its objectives in ``__main__``, shipped by value), first
with ``study.optimize`` and then with ``SparkExecutor(n_workers=1)``: one worker asks for the
next trial only after telling the last, so a seeded sampler sees the same history and the
pruner the same values, and the two runs must agree trial by trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]

_SCRIPT = """
import json, sys, warnings
import lightgbm as lgb
import numpy as np
import optuna
import sklearn.datasets
import sklearn.ensemble
import sklearn.model_selection
import xgboost as xgb
from optuna_spark import SparkExecutor

warnings.filterwarnings("ignore", category=FutureWarning)  # optuna.integration's notice
optuna.logging.set_verbosity(optuna.logging.WARNING)
N_TRIALS = 10


def sklearn_objective(trial):
    x, y = sklearn.datasets.load_iris(return_X_y=True)
    n_estimators = trial.suggest_int("n_estimators", 2, 20)
    max_depth = trial.suggest_int("max_depth", 1, 8, log=True)
    clf = sklearn.ensemble.RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=0
    )
    return sklearn.model_selection.cross_val_score(clf, x, y, n_jobs=1, cv=3).mean()


def _split():
    data, target = sklearn.datasets.load_breast_cancer(return_X_y=True)
    return sklearn.model_selection.train_test_split(data, target, test_size=0.25, random_state=0)


def lightgbm_objective(trial):
    train_x, valid_x, train_y, valid_y = _split()
    dtrain = lgb.Dataset(train_x, label=train_y)
    dvalid = lgb.Dataset(valid_x, label=valid_y)
    param = {
        "objective": "binary",
        "metric": "auc",
        "verbosity": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": 0,
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.5, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 64),
    }
    pruning_callback = optuna.integration.LightGBMPruningCallback(trial, "auc")
    gbm = lgb.train(param, dtrain, 40, valid_sets=[dvalid], callbacks=[pruning_callback])
    preds = np.rint(gbm.predict(valid_x))
    return float((preds == valid_y).mean())


def xgboost_objective(trial):
    train_x, valid_x, train_y, valid_y = _split()
    dtrain = xgb.DMatrix(train_x, label=train_y)
    dvalid = xgb.DMatrix(valid_x, label=valid_y)
    param = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "nthread": 1,
        "seed": 0,
        "eta": trial.suggest_float("eta", 1e-3, 1.0, log=True),
        "max_depth": trial.suggest_int("max_depth", 1, 9),
    }
    pruning_callback = optuna.integration.XGBoostPruningCallback(trial, "validation-auc")
    bst = xgb.train(
        param, dtrain, 40, evals=[(dvalid, "validation")], callbacks=[pruning_callback],
        verbose_eval=False,
    )
    preds = np.rint(bst.predict(dvalid))
    return float((preds == valid_y).mean())


def run(objective, optimize):
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3),
    )
    optimize(study, objective)
    return [[t.state.name, t.params, t.value] for t in study.trials]


executor = SparkExecutor(n_workers=1)
out = {}
for objective in (sklearn_objective, lightgbm_objective, xgboost_objective):
    out[objective.__name__] = {
        "in_process": run(objective, lambda s, f: s.optimize(f, n_trials=N_TRIALS)),
        "spark": run(objective, lambda s, f: executor.optimize(s, f, n_trials=N_TRIALS)),
    }
print("RESULT " + json.dumps(out))
"""


def test_optuna_examples_objectives_run_unchanged_and_prune_as_in_process(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("SPARK_LOCAL_IP", None)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    results = json.loads(line.removeprefix("RESULT "))
    for name, runs in results.items():
        assert runs["spark"] == runs["in_process"], name
    # The pruning callbacks did prune, on the workers as in-process.
    for name in ("lightgbm_objective", "xgboost_objective"):
        states = [state for state, _, _ in results[name]["spark"]]
        assert "PRUNED" in states and "COMPLETE" in states, (name, states)
