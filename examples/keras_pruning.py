"""Tune a small Keras network on Spark, with Optuna's MedianPruner stopping bad trials early.

The data (8x8 images of hand-written digits, 1,797 samples) ships inside scikit-learn: no
downloads. ``KerasPruningCallback`` reports each epoch's validation accuracy (the value the
study maximizes: a pruner compares reports in the study's direction) to the driver, whose
pruner compares it with every other worker's trials.

    pip install "optuna-spark[tensorflow,examples]"
    python examples/keras_pruning.py
    optuna-dashboard sqlite:///keras_pruning.db     # learning curves, live
"""

from __future__ import annotations

import argparse
import os

import optuna

from optuna_spark import SparkExecutor

EPOCHS = 12


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
    history = model.fit(
        X_train,
        y_train,
        validation_data=(X_valid, y_valid),
        epochs=EPOCHS,
        batch_size=64,
        verbose=0,
        # Report what the study maximizes: the pruner ranks reports in the study's direction.
        callbacks=[KerasPruningCallback(trial, "val_accuracy")],
    )
    return float(history.history["val_accuracy"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=24)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--storage", default="sqlite:///keras_pruning.db")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="keras-digits",
        storage=args.storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
        load_if_exists=True,
    )
    SparkExecutor(n_workers=args.n_workers).optimize(
        study, objective, n_trials=args.n_trials, show_progress_bar=True
    )
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    print(f"trials: {len(study.trials)}, pruned: {pruned}, epochs trained: {epochs}")
    print(f"best validation accuracy: {study.best_value:.4f} with {study.best_params}")


if __name__ == "__main__":
    main()
