"""Durable trials: a worker killed in the middle of a trial, and the trial resumed elsewhere.

Each trial trains a linear classifier on scikit-learn's digits (shipped with it: no
downloads) for 20 epochs, saving a checkpoint after each. The first run of trial 0 kills its
own Spark Python worker at epoch 8, as a preempted machine would. With
``resume_lost_trials``, the trial keeps its number and parameters and resumes on the next
free worker from its last checkpoint: epochs 0-8 are not trained again, and each epoch is
reported once.

    python examples/durable_trials.py                    # 6 trials on 2 workers
    optuna-dashboard sqlite:///outputs/durable_trials.db
    python examples/durable_trials.py --resume           # 6 more trials in the same study

A run starts a new study, replacing the one an earlier run left in the storage (it says so);
``--resume`` continues that one instead.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint

#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")
EPOCHS = 20
KILLED_AT = 8


def objective(trial: optuna.trial.BaseTrial) -> float:
    X, y = load_digits(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X / 16.0, y, random_state=0)
    alpha = trial.suggest_float("alpha", 1e-6, 1e-1, log=True)
    eta0 = trial.suggest_float("eta0", 1e-3, 1.0, log=True)
    model = SGDClassifier(alpha=alpha, eta0=eta0, learning_rate="constant", random_state=0)
    start = 0
    ckpt = checkpoint.load(trial)  # type: ignore[arg-type]
    if ckpt is not None:  # a resumed trial: its earlier run's model, after epoch ckpt.step
        model = pickle.loads((ckpt.path / "model.pkl").read_bytes())
        start = ckpt.step + 1
    trial.set_user_attr("first_epochs", [*trial.user_attrs.get("first_epochs", []), start])
    accuracy = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for epoch in range(start, EPOCHS):
            model.partial_fit(X_train, y_train, classes=np.arange(10))
            accuracy = float(model.score(X_valid, y_valid))
            trial.report(accuracy, epoch)
            (Path(tmp) / "model.pkl").write_bytes(pickle.dumps(model))
            checkpoint.save(trial, tmp, step=epoch)  # type: ignore[arg-type]
            if ckpt is None and trial.number == 0 and epoch == KILLED_AT:
                os._exit(1)  # this Python worker dies, as on a preempted machine
            if trial.should_prune():
                raise optuna.TrialPruned()
    return accuracy


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
    parser.add_argument("--n-trials", type=int, default=6, help="trials this run adds")
    parser.add_argument("--n-workers", type=int, default=2, help="concurrent Spark tasks")
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/durable_trials.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's study")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    study = open_study(
        args.resume,
        study_name="durable-digits",
        storage=args.storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    before = len(study.trials)
    SparkExecutor(n_workers=args.n_workers, resume_lost_trials=2).optimize(
        study, objective, n_trials=args.n_trials, show_progress_bar=True
    )
    for t in study.trials[before:]:
        for resume in t.system_attrs.get("optuna_spark:resumes", []):
            print(
                f"trial {t.number} lost its worker ({resume['reason']}) after epoch "
                f"{resume['checkpoint_step']}; it resumed from that checkpoint and ended "
                f"{t.state.name}: runs began at epochs {t.user_attrs['first_epochs']}, "
                f"{len(t.intermediate_values)} epochs reported, each once"
            )
    print(f"trials: {len(study.trials)}, best accuracy {study.best_value:.4f}")
    print(f"watch or inspect it: optuna-dashboard {args.storage}")


if __name__ == "__main__":
    main()
