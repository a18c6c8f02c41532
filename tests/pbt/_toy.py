"""A toy model trained in segments, with a checkpoint: ``w`` moves towards 1 at rate ``lr``."""

from __future__ import annotations

import pathlib
import tempfile

import optuna

from optuna_spark import checkpoint
from optuna_spark.pbt import get_segment

STEPS = 5


def train(trial: optuna.trial.BaseTrial) -> float:
    """One segment of ``STEPS`` steps from the checkpoint it starts from; records which
    checkpoint (step) it loaded, so that tests can check the lineage."""
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    trial.suggest_categorical("optimizer", ["sgd", "adam"])
    segment = get_segment(trial)
    assert segment is not None
    start = checkpoint.load(trial)
    w = 0.0 if start is None else float((start.path / "w.txt").read_text())
    trial.set_user_attr("loaded_step", None if start is None else start.step)
    for _ in range(STEPS):
        w += lr * (1.0 - w)
    step = (segment.generation + 1) * STEPS
    trial.report(w, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        pathlib.Path(tmp, "w.txt").write_text(repr(w))
        checkpoint.save(trial, tmp, step=step)
    return w
