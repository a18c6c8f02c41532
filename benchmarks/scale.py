"""Scale: 64 slots of sleep trials in local mode; efficiency and the driver's CPU.

A local[64] session (sleeping trials need no cores, so 64 slots fit a small machine) runs
``--trials`` trials that each sleep ``--sleep`` seconds on 64 workers, for each given sleep
(default 1 s and 5 s). Efficiency is ideal / measured, the ideal being
``ceil(trials / slots) * sleep`` (every slot busy all the time, zero overhead); the measured
time is the whole ``optimize`` call, Spark job start-up and tear-down included. Beside it:
the span from the first trial's start to the last trial's end (SparkExecutor's own
scheduling), and the overhead of a bare Spark job of 64 Python tasks that only sleep (the
floor that Spark itself sets on this machine). The driver's CPU is ``time.process_time()``
of the driver process (the service's threads, sampler, storage) over the ``optimize`` call;
the JVM's CPU is recorded beside it in the JSON.

Spark's 64 Python workers are started (cold: each imports Optuna) by an untimed warm-up
``optimize`` first; its time is reported separately.

Target: efficiency >= 90%.

Run from the repository root::

    python benchmarks/scale.py
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench


def make_objective(seconds: float) -> Any:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(seconds)
        return x

    return objective


def noop(trial: Any) -> float:
    return 0.0


def sleep_task(seconds: float) -> Any:
    def task(_: Any) -> Any:
        time.sleep(seconds)
        yield 0

    return task


def run_case(spark: Any, executor: Any, jvm: int | None, args: Any, sleep: float) -> dict:
    """``--repeats`` runs of ``--trials`` trials sleeping ``sleep`` s, and a bare Spark job."""
    import optuna

    ideal = math.ceil(args.trials / args.slots) * sleep
    objective = make_objective(sleep)
    runs: list[dict[str, Any]] = []
    for i in range(args.repeats):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        j0 = bench.proc_cpu_s(jvm)
        t0, c0 = time.perf_counter(), time.process_time()
        executor.optimize(study, objective, n_trials=args.trials)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        jvm_cpu = bench.proc_cpu_s(jvm) - j0
        trials = study.trials
        assert len(trials) == args.trials
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        first = min(t.datetime_start for t in trials)
        last = max(t.datetime_complete for t in trials)
        run = {
            "wall_s": wall,
            "first_start_to_last_complete_s": (last - first).total_seconds(),
            "efficiency": ideal / wall,
            "driver_cpu_s": cpu,
            "driver_cpu_ms_per_trial": 1e3 * cpu / args.trials,
            "jvm_cpu_s": jvm_cpu,
            "workers_seen": len({t.system_attrs["optuna_spark:worker"]["pid"] for t in trials}),
        }
        runs.append(run)
        print(
            f"{args.trials} x {sleep:g} s run {i + 1}: {wall:.2f} s, efficiency "
            f"{100 * run['efficiency']:.1f}% (first start to last complete "
            f"{run['first_start_to_last_complete_s']:.2f} s); driver CPU {cpu:.3f} s = "
            f"{run['driver_cpu_ms_per_trial']:.2f} ms/trial; JVM CPU {jvm_cpu:.2f} s; "
            f"{run['workers_seen']} worker processes",
            flush=True,
        )
    # The floor Spark itself sets: one job of ``slots`` Python tasks that only sleep.
    bare = []
    sc = spark.sparkContext
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sc.parallelize(range(args.slots), args.slots).mapPartitions(sleep_task(sleep)).collect()
        bare.append(time.perf_counter() - t0 - sleep)
        print(
            f"bare Spark job of {args.slots} tasks sleeping {sleep:g} s: overhead "
            f"{bare[-1]:.2f} s over the sleep",
            flush=True,
        )
    return {
        "trials": args.trials,
        "sleep_s": sleep,
        "ideal_s": ideal,
        "runs": runs,
        "bare_job_overhead_s": bare,
        "median_wall_s": bench.median([r["wall_s"] for r in runs]),
        "median_efficiency": bench.median([r["efficiency"] for r in runs]),
        "median_first_start_to_last_complete_s": bench.median(
            [r["first_start_to_last_complete_s"] for r in runs]
        ),
        "median_driver_cpu_s": bench.median([r["driver_cpu_s"] for r in runs]),
        "median_driver_cpu_ms_per_trial": bench.median(
            [r["driver_cpu_ms_per_trial"] for r in runs]
        ),
        "median_jvm_cpu_s": bench.median([r["jvm_cpu_s"] for r in runs]),
        "median_bare_job_overhead_s": bench.median(bare),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--trials", type=int, default=256)
    ap.add_argument(
        "--sleep", type=float, nargs="+", default=[1.0, 5.0], help="seconds each trial sleeps"
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import optuna

    from optuna_spark import SparkExecutor

    bench.quiet()
    machine = bench.machine()
    bench.print_machine(machine)

    t0 = time.perf_counter()
    spark = bench.local_session(args.slots)
    session_start = time.perf_counter() - t0
    jvm = bench.jvm_pid(spark)
    executor = SparkExecutor(spark, n_workers=args.slots)
    t0 = time.perf_counter()
    executor.optimize(optuna.create_study(), noop, n_trials=args.slots)
    warmup = time.perf_counter() - t0
    print(
        f"# session {spark.sparkContext.master} started in {session_start:.1f} s; first "
        f"optimize ({args.slots} no-op trials, starts {args.slots} Python workers) "
        f"{warmup:.1f} s"
    )

    cases = []
    for sleep in args.sleep:
        cases.append(run_case(spark, executor, jvm, args, sleep))
    targets = {
        f"efficiency >= 90% ({c['trials']} x {c['sleep_s']:g} s)": c["median_efficiency"] >= 0.9
        for c in cases
    }
    print()
    print(
        "| trials x sleep | ideal s | SparkExecutor s | efficiency | first start to last "
        "complete s | bare Spark job of 64 sleep tasks: overhead s | driver CPU ms/trial |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        print(
            f"| {c['trials']} x {c['sleep_s']:g} s | {c['ideal_s']:.2f} | "
            f"{c['median_wall_s']:.2f} | {100 * c['median_efficiency']:.1f}% | "
            f"{c['median_first_start_to_last_complete_s']:.2f} | "
            f"{c['median_bare_job_overhead_s']:.2f} | "
            f"{c['median_driver_cpu_ms_per_trial']:.2f} |"
        )
    for target, met in targets.items():
        print(f"target {target}: {'MET' if met else 'MISSED'}")
    out = bench.write_results(
        "scale",
        {
            "machine": machine,
            "params": vars(args),
            "session": {"master": spark.sparkContext.master, "start_s": session_start},
            "warmup_s": warmup,
            "cases": cases,
            "targets": targets,
        },
    )
    print(f"results: {out}")
    spark.stop()


if __name__ == "__main__":
    main()
