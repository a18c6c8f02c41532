"""Tune a gradient-boosting classifier on Spark, watched live in optuna-dashboard.

Runs on embedded local Spark (no cluster needed) with a SQLite file as the study's storage,
``outputs/quickstart.db``. The data (breast cancer diagnostics, 569 samples) ships inside
scikit-learn: no downloads.

    python examples/quickstart.py                          # 60 trials on 2 workers
    optuna-dashboard sqlite:///outputs/quickstart.db       # in a second terminal, while it runs
    python examples/quickstart.py --resume                 # 60 more trials in the same study

A run starts a new study, replacing the one an earlier run left in the storage (it says so);
``--resume`` continues that one instead.

Each trial reports its cross-validation folds; the MedianPruner on the driver stops trials
whose folds are already worse than the median of the other workers' trials.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold

from optuna_spark import SparkExecutor

#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")


def objective(trial: optuna.trial.BaseTrial) -> float:
    X, y = load_breast_cancer(return_X_y=True)
    model = HistGradientBoostingClassifier(
        learning_rate=trial.suggest_float("learning_rate", 1e-3, 0.5, log=True),
        max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 4, 64, log=True),
        min_samples_leaf=trial.suggest_int("min_samples_leaf", 2, 60),
        l2_regularization=trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        max_iter=100,
        random_state=0,
    )
    scores = []
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=0)
    for step, (train, valid) in enumerate(folds.split(X, y)):
        model.fit(X[train], y[train])
        scores.append(model.score(X[valid], y[valid]))
        trial.report(float(np.mean(scores)), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float(np.mean(scores))


def open_study(resume: bool, **kwargs: Any) -> optuna.Study:
    """``optuna.create_study(**kwargs)``: a new study, or with ``resume`` the earlier run's.

    Says which: a study of the same name left by an earlier run is replaced (deleted first)
    unless ``resume`` is set, and then continued.

    Args:
        resume: Continue the earlier run's study rather than replace it.
        **kwargs: ``optuna.create_study``'s arguments, ``study_name`` and ``storage`` included.
    """
    name, storage = kwargs["study_name"], kwargs["storage"]
    earlier = name in optuna.get_all_study_names(storage)
    if earlier and not resume:
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(load_if_exists=True, **kwargs)
    if not earlier:
        print(f"Study {name!r} in {storage}: new.")
    elif resume:
        print(f"Study {name!r} in {storage}: resumed, {len(study.trials)} trials so far.")
    else:
        print(f"Study {name!r} in {storage}: replaced the earlier run's (--resume continues it).")
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=60, help="trials this run adds")
    parser.add_argument("--n-workers", type=int, default=2, help="concurrent Spark tasks")
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/quickstart.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's study")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    study = open_study(
        args.resume,
        study_name="quickstart-breast-cancer",
        storage=args.storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5),
    )
    SparkExecutor(n_workers=args.n_workers).optimize(
        study, objective, n_trials=args.n_trials, show_progress_bar=True
    )
    counts = {s.name: 0 for s in optuna.trial.TrialState}
    for t in study.trials:
        counts[t.state.name] += 1
    print(f"trials: {len(study.trials)} {counts}")
    print(f"best accuracy: {study.best_value:.4f} with {study.best_params}")
    print(f"watch or inspect it: optuna-dashboard {args.storage}")


if __name__ == "__main__":
    main()
