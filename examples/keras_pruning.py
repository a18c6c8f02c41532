"""Tune a small Keras network on Spark, with Optuna's MedianPruner stopping bad trials early.

The data (8x8 images of hand-written digits, 1,797 samples) ships inside scikit-learn: no
downloads. ``KerasPruningCallback`` reports each epoch's validation accuracy (the value the
study maximizes: a pruner compares reports in the study's direction) to the driver, whose
pruner compares it with every other worker's trials. Each epoch's weights are a checkpoint
(``optuna_spark.checkpoint.for_keras``): a trial whose worker is lost resumes on another at the
epoch after its last checkpoint (``resume_lost_trials``).

    pip install "optuna-spark[tensorflow,examples]"
    python examples/keras_pruning.py                        # into outputs/keras_pruning.db
    optuna-dashboard sqlite:///outputs/keras_pruning.db     # learning curves, live
    python examples/keras_pruning.py --resume               # more trials in the same study

A run starts a new study, replacing the one an earlier run left in the storage (it says so);
``--resume`` continues that one instead.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import optuna

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint

EPOCHS = 12
#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")


def objective(trial: optuna.trial.BaseTrial) -> float:
    # TensorFlow's native start-up lines go to the worker's stderr, not through Python: keep
    # them out of the driver's screen (oneDNN's notice is the one it prints on a CPU).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras
    from optuna_integration.keras import KerasPruningCallback
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.25, random_state=0)

    keras.utils.set_random_seed(trial.number)
    model = keras.Sequential([keras.Input(shape=(64,))])
    for i in range(trial.suggest_int("n_layers", 1, 3)):
        model.add(
            keras.layers.Dense(
                trial.suggest_int(f"units_{i}", 4, 128, log=True), activation="relu"
            )
        )
        model.add(keras.layers.Dropout(trial.suggest_float(f"dropout_{i}", 0.0, 0.5)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(trial.suggest_float("lr", 1e-4, 1e-1, log=True)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # The weights of the trial's last checkpoint when it resumes, and the epoch to go on at.
    start, save_weights = checkpoint.for_keras(trial, model)  # type: ignore[arg-type]
    history = model.fit(
        X_train,
        y_train,
        validation_data=(X_valid, y_valid),
        epochs=EPOCHS,
        initial_epoch=start,
        batch_size=64,
        verbose=0,
        # Report what the study maximizes: the pruner ranks reports in the study's direction.
        callbacks=[save_weights, KerasPruningCallback(trial, "val_accuracy")],
    )
    return float(history.history["val_accuracy"][-1])


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
    parser.add_argument("--n-trials", type=int, default=24, help="trials this run adds")
    parser.add_argument("--n-workers", type=int, default=2, help="concurrent Spark tasks")
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/keras_pruning.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's study")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    study = open_study(
        args.resume,
        study_name="keras-digits",
        storage=args.storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
    )
    SparkExecutor(n_workers=args.n_workers, resume_lost_trials=1).optimize(
        study, objective, n_trials=args.n_trials, show_progress_bar=True
    )
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    print(f"trials: {len(study.trials)}, pruned: {pruned}, epochs trained: {epochs}")
    print(f"best validation accuracy: {study.best_value:.4f} with {study.best_params}")


if __name__ == "__main__":
    main()
