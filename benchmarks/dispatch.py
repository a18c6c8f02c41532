"""Dispatch: no-op trials per second on 2 slots, SparkExecutor side by side with its peers.

Systems, all on this machine in this one process, all Spark ones on ONE shared local[2]
session (the one SparkExecutor embeds):

- ``spark_executor``: ``SparkExecutor(spark, n_workers=2).optimize(study, ...)``, InMemory
  storage, RandomSampler.
- ``optuna_sequential``: plain Optuna, ``study.optimize(n_jobs=1)``, InMemory, RandomSampler
  (no Spark at all: the fastest in-process mode, the ceiling for no-op trials).
- ``optuna_threads``: the same with ``n_jobs=2`` (threads contend for the GIL on no-op trials).
- ``hyperopt_sparktrials``: hyperopt ``fmin`` with ``SparkTrials(parallelism=2)`` and
  ``rand.suggest``.
- ``mlflow_sparkstudy``: MLflow's ``MlflowSparkStudy`` (``mlflow.pyspark.optuna.study``) with
  ``MlflowStorage`` on a local SQLite tracking store, RandomSampler, ``n_jobs=2``.

The trial is the same everywhere: suggest one float in [0, 1] and return it (hyperopt needs a
search space, so every system gets the same one-parameter space). Extra workloads for
SparkExecutor and plain Optuna only: ``empty`` (return a constant, no suggest) and ``typical``
(2 suggests, then 3 x ``report`` + ``should_prune``).

CPU: the driver process's own (its Python threads), the JVM's, and that of the Spark Python
workers (every live process below the JVM: Spark's daemon and the workers it forked), so
that work moved from the driver to the workers is counted.

Timing: the session is started (and every system warmed up once, untimed, so that Spark's
Python workers exist) before anything is timed; each timed number is one whole ``optimize`` /
``fmin`` call, so each includes its own Spark job start-up. Each system runs ``--repeats``
times; the table shows medians.

Run from the repository root, in the peers' virtualenv (see benchmarks/README.md)::

    benchmarks/.venv-peers/bin/python benchmarks/dispatch.py

In an environment without hyperopt or MLflow those rows say so and the rest still runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench

N_SLOTS = 2


# ---------------------------------------------------------------------------------------------
# Objectives (module level: Spark ships them to the Python workers by value).


def noop_objective(trial: Any) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def empty_objective(trial: Any) -> float:
    return 0.0


def typical_objective(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    for step in range(3):
        trial.report(x + y + step, step)
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned()
    return x + y


def hyperopt_objective(params: dict[str, float]) -> float:
    return params["x"]


OBJECTIVES = {"noop": noop_objective, "empty": empty_objective, "typical": typical_objective}


# ---------------------------------------------------------------------------------------------
# One timed run of each system: returns seconds, trials actually run, driver CPU seconds.


_JVM_PID: int | None = None


Timed = tuple[float, float, float, float]


def _timed(call: Callable[[], Any]) -> Timed:
    """Wall seconds and the CPU seconds of this process, the JVM and the Python workers."""
    j0, w0 = bench.proc_cpu_s(_JVM_PID), bench.descendants_cpu_s(_JVM_PID)
    t0, c0 = time.perf_counter(), time.process_time()
    call()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    jvm = bench.proc_cpu_s(_JVM_PID) - j0
    return wall, cpu, jvm, bench.descendants_cpu_s(_JVM_PID) - w0


def _result(n_done: int, timed: Timed) -> dict[str, Any]:
    wall, cpu, jvm, workers = timed
    return {
        "seconds": wall,
        "trials": n_done,
        "driver_cpu_s": cpu,
        "jvm_cpu_s": jvm,
        "workers_cpu_s": workers,
    }


def run_spark_executor(spark: Any, n: int, workload: str) -> dict[str, Any]:
    import optuna

    from optuna_spark import SparkExecutor

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler())
    executor = SparkExecutor(spark, n_workers=N_SLOTS)
    timed = _timed(lambda: executor.optimize(study, OBJECTIVES[workload], n_trials=n))
    trials = study.trials
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert all(t.state in finished for t in trials)  # "typical" may be pruned (MedianPruner)
    assert workload == "empty" or all("x" in t.params for t in trials)
    return _result(len(trials), timed)


def run_optuna_sequential(spark: Any, n: int, workload: str) -> dict[str, Any]:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler())
    timed = _timed(lambda: study.optimize(OBJECTIVES[workload], n_trials=n, n_jobs=1))
    return _result(len(study.trials), timed)


def run_optuna_threads(spark: Any, n: int, workload: str) -> dict[str, Any]:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler())
    timed = _timed(lambda: study.optimize(OBJECTIVES[workload], n_trials=n, n_jobs=N_SLOTS))
    return _result(len(study.trials), timed)


def run_hyperopt(spark: Any, n: int, workload: str) -> dict[str, Any]:
    from hyperopt import SparkTrials
    from hyperopt import fmin
    from hyperopt import hp
    from hyperopt import rand

    trials = SparkTrials(parallelism=N_SLOTS, spark_session=spark)
    space = {"x": hp.uniform("x", 0.0, 1.0)}
    timed = _timed(
        lambda: fmin(
            hyperopt_objective,
            space,
            algo=rand.suggest,
            max_evals=n,
            trials=trials,
            show_progressbar=False,
        )
    )
    return _result(len(trials.trials), timed)


class _Mlflow:
    """An MLflow tracking store in a temporary SQLite file, shared by all MLflow runs."""

    def __init__(self, uri: str) -> None:
        import mlflow

        self.uri = uri
        mlflow.set_tracking_uri(uri)
        self.count = 0

    def run(self, spark: Any, n: int, workload: str) -> dict[str, Any]:
        import mlflow
        import optuna
        from mlflow.optuna.storage import MlflowStorage
        from mlflow.pyspark.optuna.study import MlflowSparkStudy

        self.count += 1
        name = f"dispatch-{os.getpid()}-{self.count}"
        experiment_id = mlflow.create_experiment(name)
        storage = MlflowStorage(experiment_id=experiment_id)
        study = MlflowSparkStudy(
            name, storage, sampler=optuna.samplers.RandomSampler(), mlflow_tracking_uri=self.uri
        )
        timed = _timed(lambda: study.optimize(OBJECTIVES[workload], n_trials=n, n_jobs=2))
        n_done = len(optuna.load_study(study_name=name, storage=storage).trials)
        return _result(n_done, timed)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spark-trials", type=int, default=2000, help="SparkExecutor trials/run")
    ap.add_argument("--optuna-trials", type=int, default=2000, help="plain Optuna trials/run")
    ap.add_argument("--hyperopt-trials", type=int, default=30, help="SparkTrials trials/run")
    ap.add_argument("--mlflow-trials", type=int, default=60, help="MlflowSparkStudy trials/run")
    ap.add_argument("--skip-peers", action="store_true", help="only SparkExecutor and Optuna")
    args = ap.parse_args()

    bench.quiet()
    machine = bench.machine()
    bench.print_machine(machine)

    tmp = tempfile.mkdtemp(prefix="optuna-spark-dispatch-")
    mlflow_uri = f"sqlite:///{tmp}/mlflow.db"
    t0 = time.perf_counter()
    # Executors inherit the environment of this process in local mode.
    spark = bench.local_session(
        N_SLOTS, {"MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_LOGGING_LEVEL": "WARNING"}
    )
    session_start = time.perf_counter() - t0
    global _JVM_PID
    _JVM_PID = bench.jvm_pid(spark)
    print(f"# shared session {spark.sparkContext.master} started in {session_start:.1f} s")

    # name -> (runner, trials per run, workload)
    plan: list[tuple[str, str, Callable[..., dict[str, Any]] | None, int, str]] = [
        ("spark_executor", "noop", run_spark_executor, args.spark_trials, ""),
        ("optuna_sequential", "noop", run_optuna_sequential, args.optuna_trials, ""),
        ("optuna_threads", "noop", run_optuna_threads, args.optuna_trials, ""),
    ]
    if not args.skip_peers:
        try:
            import hyperopt  # noqa: F401

            plan.append(("hyperopt_sparktrials", "noop", run_hyperopt, args.hyperopt_trials, ""))
        except Exception as e:
            plan.append(("hyperopt_sparktrials", "noop", None, 0, f"{type(e).__name__}: {e}"))
        try:
            mlflow_runner = _Mlflow(mlflow_uri).run
            import mlflow.pyspark.optuna.study  # noqa: F401

            plan.append(("mlflow_sparkstudy", "noop", mlflow_runner, args.mlflow_trials, ""))
        except Exception as e:
            plan.append(("mlflow_sparkstudy", "noop", None, 0, f"{type(e).__name__}: {e}"))
    for workload in ("empty", "typical"):
        plan.append(("spark_executor", workload, run_spark_executor, args.spark_trials, ""))
        plan.append(("optuna_sequential", workload, run_optuna_sequential, args.optuna_trials, ""))
        plan.append(("optuna_threads", workload, run_optuna_threads, args.optuna_trials, ""))

    results: list[dict[str, Any]] = []
    for system, workload, runner, n, skipped in plan:
        row: dict[str, Any] = {"system": system, "workload": workload, "trials_per_run": n}
        results.append(row)
        if runner is None:
            row["error"] = f"not runnable here: {skipped}"
            print(f"{system:22s} {workload:8s} {row['error']}", flush=True)
            continue
        try:
            # Warm-up, untimed for the table: starts Spark's Python workers for this job type.
            warm = runner(spark, max(2, min(n // 10, 20)), workload)
            row["warmup"] = warm
            runs = []
            for _ in range(args.repeats):
                r = runner(spark, n, workload)
                r["trials_per_s"] = r["trials"] / r["seconds"]
                runs.append(r)
                print(
                    f"{system:22s} {workload:8s} {r['trials']:5d} trials in {r['seconds']:7.2f} s"
                    f" = {r['trials_per_s']:9.2f} trials/s (driver CPU {r['driver_cpu_s']:.2f} s)",
                    flush=True,
                )
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
            row["traceback"] = traceback.format_exc()
            print(f"{system:22s} {workload:8s} FAILED: {row['error']}", flush=True)
            continue
        row["runs"] = runs
        row["median_trials_per_s"] = bench.median([r["trials_per_s"] for r in runs])
        row["median_seconds"] = bench.median([r["seconds"] for r in runs])
        row["median_driver_cpu_ms_per_trial"] = bench.median(
            [1e3 * r["driver_cpu_s"] / r["trials"] for r in runs]
        )
        row["median_jvm_cpu_ms_per_trial"] = bench.median(
            [1e3 * r["jvm_cpu_s"] / r["trials"] for r in runs]
        )
        row["median_workers_cpu_ms_per_trial"] = bench.median(
            [1e3 * r["workers_cpu_s"] / r["trials"] for r in runs]
        )

    by = {(r["system"], r["workload"]): r for r in results if "median_trials_per_s" in r}
    ours = by.get(("spark_executor", "noop"), {}).get("median_trials_per_s")
    ratios: dict[str, float | None] = {}
    for peer in (
        "optuna_sequential",
        "optuna_threads",
        "hyperopt_sparktrials",
        "mlflow_sparkstudy",
    ):
        theirs = by.get((peer, "noop"), {}).get("median_trials_per_s")
        ratios[peer] = ours / theirs if ours and theirs else None
    mlflow_ratio, hyperopt_ratio = ratios["mlflow_sparkstudy"], ratios["hyperopt_sparktrials"]
    targets: dict[str, bool | None] = {
        "trials_per_s >= 250": None if ours is None else ours >= 250,
        "vs mlflow_sparkstudy >= 80x": None if mlflow_ratio is None else mlflow_ratio >= 80,
        "vs hyperopt_sparktrials >= 250x": (
            None if hyperopt_ratio is None else hyperopt_ratio >= 250
        ),
    }

    print()
    print(
        "| system | workload | trials/run | median trials/s | driver Python CPU ms/trial "
        "| JVM CPU ms/trial | Python workers' CPU ms/trial | SparkExecutor's speed-up |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "median_trials_per_s" not in r:
            print(f"| {r['system']} | {r['workload']} | - | {r.get('error')} | - | - | - | - |")
            continue
        ratio = ""
        if r["workload"] == "noop" and r["system"] != "spark_executor" and ours:
            ratio = f"{ours / r['median_trials_per_s']:.3g}x"
        print(
            f"| {r['system']} | {r['workload']} | {r['trials_per_run']} | "
            f"{r['median_trials_per_s']:.4g} | {r['median_driver_cpu_ms_per_trial']:.3g} | "
            f"{r['median_jvm_cpu_ms_per_trial']:.3g} | "
            f"{r['median_workers_cpu_ms_per_trial']:.3g} | {ratio} |"
        )
    print()
    for target, met in targets.items():
        print(f"target {target}: {'not measured' if met is None else 'MET' if met else 'MISSED'}")

    out = bench.write_results(
        "dispatch",
        {
            "machine": machine,
            "session": {"master": spark.sparkContext.master, "start_s": session_start},
            "repeats": args.repeats,
            "results": results,
            "ratios_spark_executor_over": ratios,
            "targets": targets,
        },
    )
    print(f"results: {out}")
    spark.stop()


if __name__ == "__main__":
    main()
