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


def timed_objective(trial: optuna.trial.BaseTrial) -> float:
    import time

    trial.set_user_attr("start", time.time())
    time.sleep(0.3)
    trial.set_user_attr("end", time.time())
    return trial.suggest_float("x", 0, 1)


def most_at_once(trials: list[optuna.trial.FrozenTrial]) -> int:
    """The largest number of trials whose objectives ran at the same moment."""
    events = sorted(
        [(t.user_attrs["start"], 1) for t in trials] + [(t.user_attrs["end"], -1) for t in trials]
    )
    now = peak = 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    return peak


def run_with_resources(spark: SparkSession, storage: str) -> None:
    """4 workers asked for, each task needs 2 of the cluster's 4 cores: 2 run at once."""
    study = optuna.create_study(study_name="resources", storage=storage)
    executor = SparkExecutor(spark, n_workers=4, resources={"cpus": 2})
    executor.optimize(study, timed_objective, n_trials=12)
    trials = optuna.load_study(study_name="resources", storage=storage).trials
    print(
        json.dumps(
            {
                "n": len(trials),
                "states": sorted({t.state.name for t in trials}),
                "most_at_once": most_at_once(trials),
            }
        )
    )


def run_with_fractional_gpus(spark: SparkSession, storage: str) -> None:
    """Two executors with one GPU each; every trial asks for half a GPU: four at once."""
    study = optuna.create_study(study_name="fractional", storage=storage)
    executor = SparkExecutor(spark, n_workers=4, resources={"gpus": 0.5})
    executor.optimize(study, timed_objective, n_trials=16)
    trials = optuna.load_study(study_name="fractional", storage=storage).trials
    where = [t.system_attrs["optuna_spark:worker"] for t in trials]
    print(
        json.dumps(
            {
                "n": len(trials),
                "states": sorted({t.state.name for t in trials}),
                "most_at_once": most_at_once(trials),
                "gpus": sorted({str(w.get("gpus")) for w in where}),
                "executors": sorted({str(w.get("executor_id")) for w in where}),
            }
        )
    )


def by_layers(trial: optuna.Trial) -> str:
    return "large" if trial.suggest_int("layers", 1, 16) > 8 else "small"


def layered_objective(trial: optuna.trial.BaseTrial) -> float:
    import os
    import time

    layers = trial.suggest_int("layers", 1, 16)  # the value by_layers drew on the driver
    trial.set_user_attr("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    time.sleep(0.2)
    return layers + trial.suggest_float("x", 0, 1)


def run_with_trial_resources(spark: SparkSession, storage: str) -> None:
    """Two executors of 2 cores and 1 GPU; a small trial needs a core, a large one a whole
    executor (2 cores and its GPU): each runs under the profile its parameters call for."""
    from optuna_spark import TrialResources

    study = optuna.create_study(
        study_name="profiles", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    resources = TrialResources(
        {"small": {"cpus": 1}, "large": {"cpus": 2, "gpus": 1}}, by_layers, n_workers=1
    )
    SparkExecutor(spark, resources=resources).optimize(study, layered_objective, n_trials=16)
    trials = optuna.load_study(study_name="profiles", storage=storage).trials
    print(
        json.dumps(
            {
                "n": len(trials),
                "states": sorted({t.state.name for t in trials}),
                "ran": sorted(
                    {
                        (
                            "large" if t.params["layers"] > 8 else "small",
                            t.system_attrs["optuna_spark:worker"]["profile"],
                            str(t.system_attrs["optuna_spark:worker"].get("gpus")),
                            str(t.user_attrs["CUDA_VISIBLE_DEVICES"]),
                        )
                        for t in trials
                    }
                ),
            }
        )
    )


def slow_objective(trial: optuna.trial.BaseTrial) -> float:
    import time

    trial.set_user_attr("start", time.time())
    time.sleep(0.5)
    trial.set_user_attr("end", time.time())
    return trial.suggest_float("x", 0, 1)


def n_executors(spark: SparkSession) -> int:
    """Executors the application holds now (the driver not counted)."""
    return int(spark.sparkContext._jsc.sc().getExecutorIds().size())


def run_with_dynamic_allocation(spark: SparkSession, storage: str) -> None:
    """1 to 4 executors of one core: the workers' tasks wait for the executors Spark adds,
    and once the study is over the tasks end, so that Spark releases the executors."""
    import time

    study = optuna.create_study(study_name="dynamic", storage=storage)
    SparkExecutor(spark, n_workers=4).optimize(study, slow_objective, n_trials=60)
    trials = optuna.load_study(study_name="dynamic", storage=storage).trials
    at_end = n_executors(spark)
    deadline = time.monotonic() + 120  # the idle timeout is 3 s; executors end in a few
    while n_executors(spark) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    print(
        json.dumps(
            {
                "n": len(trials),
                "states": sorted({t.state.name for t in trials}),
                "most_at_once": most_at_once(trials),
                "executors": len(
                    {t.system_attrs["optuna_spark:worker"]["executor_id"] for t in trials}
                ),
                "executors_at_end": at_end,
                "executors_after": n_executors(spark),
            }
        )
    )


DYNAMIC = {
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.shuffleTracking.enabled": "true",
    "spark.dynamicAllocation.minExecutors": "1",
    "spark.dynamicAllocation.initialExecutors": "1",
    "spark.dynamicAllocation.maxExecutors": "4",
    "spark.dynamicAllocation.executorIdleTimeout": "3s",
    "spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
    "spark.executor.cores": "1",
}


def main(master: str, storage: str, mode: str = "") -> None:
    builder = SparkSession.builder
    if mode == "--gpus":
        builder = builder.config("spark.executor.resource.gpu.amount", "1").config(
            "spark.task.resource.gpu.amount", "1"
        )
    if mode in ("--fractional-gpus", "--profiles"):
        builder = builder.config("spark.executor.resource.gpu.amount", "1")
    if mode == "--dynamic":
        for key, value in DYNAMIC.items():
            builder = builder.config(key, value)
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
    special = {
        "--resources": run_with_resources,
        "--fractional-gpus": run_with_fractional_gpus,
        "--dynamic": run_with_dynamic_allocation,
        "--profiles": run_with_trial_resources,
    }
    if mode in special:
        special[mode](spark, storage)
        spark.stop()
        return
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
    main(sys.argv[1], sys.argv[2], *sys.argv[3:4])
