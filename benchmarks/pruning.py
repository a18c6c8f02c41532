"""Early stopping on Spark workers: epochs, wall time and best value with and without pruning.

A deterministic synthetic learning-curve family stands in for training (each epoch sleeps a
fixed time): a configuration's final loss and convergence speed depend on its parameters,
and each epoch's loss has a little seeded noise. Four workers on embedded Spark, three
sampler seeds per setting: no pruning, MedianPruner and HyperbandPruner.

    python benchmarks/pruning.py              # writes benchmarks/results/pruning.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from optuna_spark import SparkExecutor

EPOCHS = 27
EPOCH_SECONDS = 0.02


def curve_objective(trial: optuna.trial.BaseTrial) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    width = trial.suggest_int("width", 8, 512, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.6)
    # Best near lr=0.03, width ~128, dropout ~0.2; the final loss is what a model reaches.
    final = (
        0.1
        + 0.3 * (math.log10(lr) + 1.5) ** 2
        + 0.1 * (math.log2(width) - 7) ** 2 / 4
        + 0.5 * (dropout - 0.2) ** 2
    )
    tau = 2.0 + 6.0 * abs(math.log10(lr) + 1.5)  # slow learners converge slowly
    rng = np.random.default_rng(abs(hash((lr, width, dropout))) % 2**32)
    loss = 2.5
    for epoch in range(EPOCHS):
        time.sleep(EPOCH_SECONDS)
        loss = final + (2.5 - final) * math.exp(-(epoch + 1) / tau) + rng.normal(0, 0.01)
        trial.report(loss, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


PRUNERS = {
    "none": lambda: optuna.pruners.NopPruner(),
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=EPOCHS, reduction_factor=3
    ),
}


def run(executor: SparkExecutor, pruner: str, seed: int, n_trials: int) -> dict[str, Any]:
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed), pruner=PRUNERS[pruner]()
    )
    t0 = time.perf_counter()
    executor.optimize(study, curve_objective, n_trials=n_trials)
    wall = time.perf_counter() - t0
    return {
        "pruner": pruner,
        "seed": seed,
        "wall_s": wall,
        "epochs": sum(len(t.intermediate_values) for t in study.trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "best": study.best_value,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/pruning.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    executor = SparkExecutor(n_workers=4)
    executor.optimize(optuna.create_study(), lambda t: 0.0, n_trials=4)  # warm the workers
    rows = [run(executor, p, seed, args.n_trials) for seed in range(args.seeds) for p in PRUNERS]
    summary = {}
    for p in PRUNERS:
        mine = [r for r in rows if r["pruner"] == p]
        summary[p] = {
            "epochs_median": statistics.median(r["epochs"] for r in mine),
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "best_mean": statistics.mean(r["best"] for r in mine),
            "best_min": min(r["best"] for r in mine),
            "best_max": max(r["best"] for r in mine),
        }
    base = summary["none"]
    print(f"{'pruner':<10} {'epochs':>7} {'saved':>6} {'wall s':>7} {'best (mean, range)':>28}")
    for p, s in summary.items():
        saved = 1 - s["epochs_median"] / base["epochs_median"]
        s["epochs_saved"] = saved
        print(
            f"{p:<10} {s['epochs_median']:>7.0f} {saved:>6.0%} {s['wall_s_median']:>7.1f} "
            f"{s['best_mean']:>10.4f} [{s['best_min']:.4f}, {s['best_max']:.4f}]"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "n_trials": args.n_trials,
                "epochs_per_trial": EPOCHS,
                "rows": rows,
                "summary": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
