"""Checkpoints of running trials: a trial whose worker is lost resumes where it left off.

An objective saves its state every few steps and loads it when it starts; the same code runs
in-process under ``study.optimize``, on Spark workers and on ``optuna_spark.remote`` workers.
When a worker is lost (a preempted machine, a lost executor, a process killed),
``SparkExecutor(resume_lost_trials=...)`` runs the objective again for the same trial on
another worker: ``suggest_*`` returns the same values, and :func:`load` the last checkpoint.

Checkpoints go to an Optuna artifact store (``SparkExecutor(checkpoint_store=...)``); with
none given, in-process and on an embedded Spark session they go to a directory of this
machine's temporary directory (:data:`DEFAULT_DIR`). Only a running trial's latest
checkpoint is kept. :func:`for_keras` (a callback that saves a Keras model's weights, and the
epoch to resume at) and :func:`save_torch` / :func:`load_torch` (PyTorch ``state_dict``s) do
the same in each framework's own file format.

Example:

    .. code-block:: python

        import pathlib
        import tempfile

        import optuna
        from optuna_spark import checkpoint


        def objective(trial):
            x = trial.suggest_float("x", -10, 10)
            start, total = 0, 0.0
            ckpt = checkpoint.load(trial)  # None on a trial's first run
            if ckpt is not None:
                start = ckpt.step + 1
                total = float((ckpt.path / "state.txt").read_text())
            with tempfile.TemporaryDirectory() as tmp:
                for step in range(start, 5):
                    total += (x - 2) ** 2
                    trial.report(total, step)
                    (pathlib.Path(tmp) / "state.txt").write_text(str(total))
                    checkpoint.save(trial, tmp, step=step)
            return total


        study = optuna.create_study()
        study.optimize(objective, n_trials=3)
        print(study.best_value)
"""

from __future__ import annotations

from optuna_spark.checkpoint._api import ATTR_CHECKPOINT
from optuna_spark.checkpoint._api import DEFAULT_DIR
from optuna_spark.checkpoint._api import Checkpoint
from optuna_spark.checkpoint._api import default_store
from optuna_spark.checkpoint._api import load
from optuna_spark.checkpoint._api import requested
from optuna_spark.checkpoint._api import save
from optuna_spark.checkpoint._frameworks import for_keras
from optuna_spark.checkpoint._frameworks import load_torch
from optuna_spark.checkpoint._frameworks import save_torch

__all__ = [
    "ATTR_CHECKPOINT",
    "DEFAULT_DIR",
    "Checkpoint",
    "default_store",
    "for_keras",
    "load",
    "load_torch",
    "requested",
    "save",
    "save_torch",
]
