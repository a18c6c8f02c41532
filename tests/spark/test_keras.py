"""Keras pruning callbacks from optuna-integration, unchanged, inside Spark workers."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor

pytestmark = [pytest.mark.spark, pytest.mark.tensorflow, pytest.mark.timeout(400)]


def _fit(trial: optuna.trial.BaseTrial, callback_name: str) -> float:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    if callback_name == "keras":
        import keras
        from optuna_integration.keras import KerasPruningCallback as Callback
    else:
        from optuna_integration.tfkeras import TFKerasPruningCallback as Callback
        from tensorflow import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    history = model.fit(
        x,
        y,
        validation_split=0.25,
        epochs=6,
        batch_size=32,
        verbose=0,
        callbacks=[Callback(trial, "val_loss")],
    )
    return float(history.history["val_loss"][-1])


def keras_objective(trial: optuna.trial.BaseTrial) -> float:
    return _fit(trial, "keras")


def tfkeras_objective(trial: optuna.trial.BaseTrial) -> float:
    return _fit(trial, "tfkeras")


@pytest.mark.parametrize("objective", [keras_objective, tfkeras_objective])
def test_keras_pruning_callback_in_spark_workers(
    executor: SparkExecutor, objective: object
) -> None:
    study = optuna.create_study(
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    )
    # Good learning rates first, then hopeless ones that the pruner must stop.
    for lr in [0.05, 0.03, 0.04, 1e-5, 2e-5, 1e-5]:
        study.enqueue_trial({"lr": lr})
    executor.optimize(study, objective, n_trials=6)  # type: ignore[arg-type]
    assert len(study.trials) == 6
    for t in study.trials:
        assert len(t.intermediate_values) >= 1  # the callback reported through the driver
    hopeless = [t for t in study.trials if t.params["lr"] < 1e-4]
    assert sum(t.state == TrialState.PRUNED for t in hopeless) >= 2
    assert study.best_params["lr"] > 1e-2
