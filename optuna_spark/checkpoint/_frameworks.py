"""Checkpoints of Keras models and PyTorch state, in the framework's own file formats."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import optuna

from optuna_spark.checkpoint._api import load
from optuna_spark.checkpoint._api import save

_WEIGHTS = "model.weights.h5"
_STATE = "state.pt"


def _import(name: str, extra: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"This checkpoint helper needs {name}; install it with "
            f"`pip install 'optuna-spark[{extra}]'`."
        ) from e


def for_keras(
    trial: optuna.Trial, model: Any, *, every: int = 1, store: Any = None
) -> tuple[int, Any]:
    """Resume a Keras model from ``trial``'s checkpoint, and a callback that checkpoints it.

    Loads the weights of the trial's last checkpoint into ``model`` (built: its weights exist)
    when it has one, and returns the epoch to pass to ``model.fit(initial_epoch=...)`` (``0``
    on a first run) with a callback that saves the weights every ``every`` epochs.

    Args:
        trial: The running trial.
        model: A built Keras 3 model.
        every: Save after every this many epochs.
        store: An artifact store instead of the run's (see :func:`save`).

    Example:

        .. code-block:: python

            start, saver = checkpoint.for_keras(trial, model, every=1)
            model.fit(x, y, epochs=20, initial_epoch=start, callbacks=[saver])
    """
    keras = _import("keras", "tensorflow")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int (epochs), but got {every=}.")
    ckpt = load(trial, store=store)
    start = 0
    if ckpt is not None:
        model.load_weights(str(ckpt.path / _WEIGHTS))
        start = ckpt.step + 1

    class _Saver(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if (epoch + 1) % every == 0:
                with tempfile.TemporaryDirectory() as tmp:
                    self.model.save_weights(str(Path(tmp) / _WEIGHTS))
                    save(trial, tmp, step=epoch, store=store)

    return start, _Saver()


def save_torch(trial: optuna.Trial, state: Any, *, step: int, store: Any = None) -> None:
    """Save PyTorch ``state`` (``state_dict()``s, plain values) as ``trial``'s checkpoint.

    Example:

        .. code-block:: python

            state = {"model": model.state_dict(), "optim": optim.state_dict()}
            checkpoint.save_torch(trial, state, step=epoch)
    """
    torch = _import("torch", "torch")
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / _STATE)
        save(trial, tmp, step=step, store=store)


def load_torch(
    trial: optuna.Trial, *, map_location: Any = "cpu", store: Any = None
) -> tuple[Any, int] | None:
    """The state :func:`save_torch` saved last for ``trial`` and its step, or ``None``.

    Read with ``torch.load(weights_only=True)``: tensors, containers and plain values only,
    never arbitrary pickled objects.

    Example:

        .. code-block:: python

            saved = checkpoint.load_torch(trial)
            if saved is not None:
                state, step = saved
                model.load_state_dict(state["model"])
                optim.load_state_dict(state["optim"])
    """
    torch = _import("torch", "torch")
    ckpt = load(trial, store=store)
    if ckpt is None:
        return None
    state = torch.load(ckpt.path / _STATE, map_location=map_location, weights_only=True)
    return state, ckpt.step
