"""A driver on a standalone cluster with graceful decommissioning; prints what the test checks
as JSON. The test decommissions worker 0 (SIGPWR) once every trial has reached step 3."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from pyspark.sql import SparkSession

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint

STEPS = 40


def objective(trial: optuna.Trial, marks: str) -> float:
    ckpt = checkpoint.load(trial)
    start = 0 if ckpt is None else ckpt.step + 1
    trial.set_user_attr("starts", [*trial.user_attrs.get("starts", []), start])
    for step in range(start, STEPS):
        time.sleep(0.25)  # a step of training
        trial.report(float(step), step)
        if step == 3 and ckpt is None:
            Path(marks, f"trial-{trial.number}").touch()
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "step").write_text(str(step))
            checkpoint.save(trial, tmp, step=step)  # hands back when its executor goes
    return 0.0


def main(master: str, storage: str, checkpoints: str, marks: str) -> None:
    spark = (
        SparkSession.builder.master(master)
        .appName("optuna-spark-decommission-test")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.executor.memory", "512m")
        .config("spark.task.maxFailures", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.decommission.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    study = optuna.create_study(study_name="decommission", storage=storage)
    executor = SparkExecutor(
        spark,
        n_workers=4,
        resume_lost_trials=1,
        checkpoint_store=FileSystemArtifactStore(checkpoints),
        heartbeat_interval=0.5,
        heartbeat_grace=30.0,
    )
    executor.optimize(study, lambda t: objective(t, marks), n_trials=4)
    trials = optuna.load_study(study_name="decommission", storage=storage).trials
    print(
        json.dumps(
            [
                {
                    "state": t.state.name,
                    "starts": t.user_attrs["starts"],
                    "steps": sorted(t.intermediate_values),
                    "resumes": t.system_attrs.get("optuna_spark:resumes", []),
                    "executor": t.system_attrs["optuna_spark:worker"].get("executor_id"),
                }
                for t in trials
            ]
        )
    )
    spark.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main(*sys.argv[1:5])
