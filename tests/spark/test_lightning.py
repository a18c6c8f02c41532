"""Lightning's pruning callback from optuna-integration, unchanged, inside Spark workers."""

from __future__ import annotations

import statistics

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor

pytestmark = [pytest.mark.spark, pytest.mark.torch, pytest.mark.timeout(300)]

EPOCHS = 6
WARMUP = 2  # MedianPruner's n_warmup_steps: the first epoch at which it may prune
GOOD_LR = 0.03
BAD_LR = 0.0  # Adam with no step size: the weights never move, the loss stays where it started


def lightning_objective(trial: optuna.trial.BaseTrial) -> float:
    """A small MLP on 200 generated rows; the callback reports the logged ``val_loss``."""
    import logging

    import lightning.pytorch as pl
    import torch
    from optuna_integration import PyTorchLightningPruningCallback
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader
    from torch.utils.data import TensorDataset

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # "GPU available: ..."
    torch.set_num_threads(1)  # the same numbers in every worker process
    pl.seed_everything(0, verbose=False)  # the same initial weights in every trial
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(200, 1, generator=gen)
    train = DataLoader(TensorDataset(x[:160], y[:160]), batch_size=32)
    val = DataLoader(TensorDataset(x[160:], y[160:]), batch_size=40)  # one batch per epoch

    class Regressor(pl.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)
            )
            self.lr = lr
            self.val_losses: list[float] = []  # what the model computed, epoch by epoch

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            inputs, targets = batch
            loss = F.mse_loss(self.net(inputs), targets)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
            inputs, targets = batch
            loss = F.mse_loss(self.net(inputs), targets)
            self.log("val_loss", loss)
            if not self.trainer.sanity_checking:
                self.val_losses.append(loss.item())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=self.lr)

    model = Regressor(trial.suggest_categorical("lr", [GOOD_LR, BAD_LR]))
    callback = PyTorchLightningPruningCallback(trial, monitor="val_loss")
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    try:
        trainer.fit(model, train, val)  # raises optuna.TrialPruned from the callback
    finally:
        trial.set_user_attr("val_losses", model.val_losses)
    callback.check_pruned()  # what its docs ask for after fit (reads trial.study; no-op here)
    return float(trainer.callback_metrics["val_loss"])


def test_lightning_pruning_callback_in_spark_workers(executor: SparkExecutor) -> None:
    """Trials that cannot learn are pruned at the first epoch allowed, by the median rule.

    Which completed trials a pruned trial was compared with depends on the workers' timing;
    the setup makes the outcome independent of it. Every trial starts from the same weights
    on the same data, so the good trials (all the same learning rate) have one learning curve,
    and the bad ones (learning rate 0) keep the initial loss, above that curve after the first
    epoch. The three good trials are enqueued first, and two workers take one trial at a time,
    so a bad trial starts only after two trials ended, both good: the pruner's two start-up
    trials are there when it first may prune (epoch ``WARMUP``), and the median of any set of
    good trials is their common value, whichever had ended by then. A good trial equals that
    median and is not pruned (the median rule prunes only what is worse).
    """
    study = optuna.create_study(
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=WARMUP)
    )
    lrs = [GOOD_LR] * 3 + [BAD_LR] * 3
    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    executor.optimize(study, lightning_objective, n_trials=len(lrs))

    trials = study.trials
    assert [t.params["lr"] for t in trials] == lrs
    for t in trials:
        # The callback reported the monitored metric, as the model computed it, every epoch.
        losses = t.user_attrs["val_losses"]
        assert sorted(t.intermediate_values) == list(range(len(losses)))
        reported = [t.intermediate_values[epoch] for epoch in range(len(losses))]
        assert reported == pytest.approx(losses, rel=1e-6)

    good = [t for t in trials if t.params["lr"] == GOOD_LR]
    bad = [t for t in trials if t.params["lr"] == BAD_LR]
    for t in good:
        assert t.state == TrialState.COMPLETE, t.intermediate_values
        assert len(t.intermediate_values) == EPOCHS
        assert t.value == t.intermediate_values[EPOCHS - 1]
    for t in bad:
        assert t.state == TrialState.PRUNED, t.intermediate_values
        assert max(t.intermediate_values) == WARMUP  # stopped there: no later epoch ran
        assert t.datetime_complete is not None
        ended_before = [
            g
            for g in good
            if g.datetime_complete is not None and g.datetime_complete < t.datetime_complete
        ]
        assert len(ended_before) >= 2
        median = statistics.median(g.intermediate_values[WARMUP] for g in ended_before)
        assert t.intermediate_values[WARMUP] > median
    assert study.best_params == {"lr": GOOD_LR}
