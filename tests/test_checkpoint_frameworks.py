"""Checkpoint helpers for Keras and PyTorch: a model trained partway, then resumed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from optuna_spark import checkpoint


@pytest.mark.torch
def test_torch_state_round_trips_as_tensors(tmp_path: Path) -> None:
    import torch

    store = FileSystemArtifactStore(str(tmp_path))
    trial = optuna.create_study().ask()
    assert checkpoint.load_torch(trial, store=store) is None
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    optim.step()
    state = {"model": model.state_dict(), "optim": optim.state_dict(), "epoch": 4}
    checkpoint.save_torch(trial, state, step=4, store=store)

    saved = checkpoint.load_torch(trial, store=store)
    assert saved is not None
    restored, step = saved
    assert step == 4 and restored["epoch"] == 4
    again = torch.nn.Linear(3, 2)
    again.load_state_dict(restored["model"])
    assert torch.equal(again.weight, model.weight)


@pytest.mark.tensorflow
def test_a_keras_model_resumes_at_the_epoch_after_its_checkpoint(tmp_path: Path) -> None:
    import keras

    store = FileSystemArtifactStore(str(tmp_path))
    trial = optuna.create_study().ask()
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    def build() -> keras.Model:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return model

    first = build()
    start, saver = checkpoint.for_keras(trial, first, every=2, store=store)
    assert start == 0
    first.fit(x, y, epochs=5, initial_epoch=start, callbacks=[saver], verbose=0)
    # Saved after epochs 1 and 3 (every 2): the latest is epoch 3's.
    resumed = build()
    start, _ = checkpoint.for_keras(trial, resumed, every=2, store=store)
    assert start == 4
    history = resumed.fit(x, y, epochs=5, initial_epoch=start, verbose=0)
    assert len(history.history["loss"]) == 1  # only the epoch that was not saved runs again
    with pytest.raises(ValueError, match="every must be a positive int"):
        checkpoint.for_keras(trial, resumed, every=0, store=store)
