"""A driver program run against a standalone cluster; prints what the test checks as JSON."""

from __future__ import annotations

import json
import sys

import optuna
from pyspark.sql import SparkSession

from optuna_spark import SparkExecutor


def objective(trial: optuna.trial.BaseTrial) -> float:
    import os

    trial.set_user_attr("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    x = trial.suggest_float("x", -5, 5)
    for step in range(3):
        trial.report(x * x + 1 / (step + 1), step)
    return x * x


def main(master: str, storage: str, gpus: bool) -> None:
    builder = SparkSession.builder
    if gpus:
        builder = builder.config("spark.executor.resource.gpu.amount", "1").config(
            "spark.task.resource.gpu.amount", "1"
        )
    spark = (
        builder.master(master)
        .appName("optuna-spark-cluster-test")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.executor.memory", "512m")
        .config("spark.task.maxFailures", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    study = optuna.create_study(study_name="cluster", storage=storage)
    SparkExecutor(spark, n_workers=2).optimize(study, objective, n_trials=30)
    trials = optuna.load_study(study_name="cluster", storage=storage).trials
    print(
        json.dumps(
            {
                "n": len(trials),
                "states": sorted({t.state.name for t in trials}),
                "executors": sorted(
                    {str(t.system_attrs["optuna_spark:worker"].get("executor_id")) for t in trials}
                ),
                "steps": sorted({len(t.intermediate_values) for t in trials}),
                "gpus": sorted(
                    {str(t.system_attrs["optuna_spark:worker"].get("gpus")) for t in trials}
                ),
                "cuda_visible": sorted(
                    {str(t.user_attrs["CUDA_VISIBLE_DEVICES"]) for t in trials}
                ),
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], gpus=sys.argv[3:] == ["--gpus"])
