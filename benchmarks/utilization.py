"""Utilization: heterogeneous trials on 8 slots, against the asynchronous ideal and rounds.

64 trials sleep for lognormal durations (fixed seed; trial ``n`` always sleeps
``durations[n]``) on a local[8] session (sleeping needs no cores). Three numbers:

- **measured**: the wall time of ``SparkExecutor(n_workers=8).optimize(...)``, job start-up
  included (the session is started and its Python workers warmed up before);
- **ideal**: greedy asynchronous list scheduling of the same durations, with zero overhead:
  trial ``n`` starts on the earliest-free slot, in trial-number order;
- **rounds**: synchronous rounds with zero overhead: a barrier every 8 trials, each round
  lasting its longest trial (sum over rounds of the max). Also measured for real (once by
  default), as 8 ``optimize`` calls of 8 trials each on the same study: what a
  barrier-per-round system pays, job start-up per round included.

Targets: measured within 5% of the ideal, and >= 1.5x faster than rounds.

Run from the repository root::

    python benchmarks/utilization.py
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench


def lognormal_durations(n: int, median: float, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]


def greedy_async_makespan(durations: list[float], n_slots: int) -> float:
    """List scheduling: each trial, in order, starts on the slot that frees up first."""
    free_at = [0.0] * n_slots
    heapq.heapify(free_at)
    end = 0.0
    for d in durations:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + d)
        end = max(end, start + d)
    return end


def rounds_makespan(durations: list[float], n_slots: int) -> float:
    """A barrier every ``n_slots`` trials: each round lasts as long as its longest trial."""
    return sum(max(durations[i : i + n_slots]) for i in range(0, len(durations), n_slots))


def make_objective(durations: list[float]) -> Any:
    def objective(trial: Any) -> float:
        d = durations[trial.number]
        time.sleep(d)
        return d

    return objective


def noop(trial: Any) -> float:
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--median", type=float, default=1.0, help="median trial seconds")
    ap.add_argument("--sigma", type=float, default=0.8, help="lognormal sigma")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--rounds-repeats", type=int, default=1, help="measured-rounds runs (0: skip them)"
    )
    args = ap.parse_args()

    import optuna

    from optuna_spark import SparkExecutor

    bench.quiet()
    machine = bench.machine()
    bench.print_machine(machine)

    durations = lognormal_durations(args.trials, args.median, args.sigma, args.seed)
    ideal = greedy_async_makespan(durations, args.slots)
    rounds = rounds_makespan(durations, args.slots)
    print(
        f"# {args.trials} trials, lognormal(median {args.median} s, sigma {args.sigma}, seed "
        f"{args.seed}): sum {sum(durations):.1f} s, min {min(durations):.2f} s, max "
        f"{max(durations):.2f} s; on {args.slots} slots: ideal {ideal:.2f} s, rounds "
        f"{rounds:.2f} s"
    )

    t0 = time.perf_counter()
    spark = bench.local_session(args.slots)
    session_start = time.perf_counter() - t0
    executor = SparkExecutor(spark, n_workers=args.slots)
    t0 = time.perf_counter()
    executor.optimize(optuna.create_study(), noop, n_trials=args.slots)
    warmup = time.perf_counter() - t0
    print(
        f"# session {spark.sparkContext.master} started in {session_start:.1f} s; first "
        f"optimize ({args.slots} no-op trials, starts the Python workers) {warmup:.2f} s"
    )

    objective = make_objective(durations)
    runs: list[dict[str, Any]] = []
    for i in range(args.repeats):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        t0, c0 = time.perf_counter(), time.process_time()
        executor.optimize(study, objective, n_trials=args.trials)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        trials = study.trials
        assert len(trials) == args.trials
        assert all(t.value == durations[t.number] for t in trials)
        first = min(t.datetime_start for t in trials)
        last = max(t.datetime_complete for t in trials)
        # Per-trial overhead as the driver sees it: start-to-complete minus the sleep.
        extra = [
            (t.datetime_complete - t.datetime_start).total_seconds() - durations[t.number]
            for t in trials
        ]
        run = {
            "wall_s": wall,
            "first_start_to_last_complete_s": (last - first).total_seconds(),
            "driver_cpu_s": cpu,
            "mean_trial_overhead_ms": 1e3 * sum(extra) / len(extra),
            "vs_ideal": wall / ideal,
            "speedup_vs_rounds": rounds / wall,
        }
        runs.append(run)
        print(
            f"SparkExecutor run {i + 1}: {wall:.2f} s ({run['vs_ideal']:.3f}x ideal, "
            f"{run['speedup_vs_rounds']:.2f}x faster than rounds); first start to last "
            f"complete {run['first_start_to_last_complete_s']:.2f} s; driver CPU {cpu:.3f} s",
            flush=True,
        )

    real_rounds: list[float] = []
    if args.rounds_repeats > 0:
        for i in range(args.rounds_repeats):
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
            t0 = time.perf_counter()
            for _ in range(0, args.trials, args.slots):
                executor.optimize(study, objective, n_trials=args.slots)
            real_rounds.append(time.perf_counter() - t0)
            assert all(t.value == durations[t.number] for t in study.trials)
            print(
                f"rounds, measured (one optimize per round) run {i + 1}: {real_rounds[-1]:.2f} s",
                flush=True,
            )

    med_wall = bench.median([r["wall_s"] for r in runs])
    summary = {
        "ideal_s": ideal,
        "rounds_s": rounds,
        "median_wall_s": med_wall,
        "median_vs_ideal": med_wall / ideal,
        "median_efficiency": ideal / med_wall,
        "median_speedup_vs_rounds": rounds / med_wall,
        "median_rounds_measured_s": bench.median(real_rounds) if real_rounds else None,
        "median_speedup_vs_rounds_measured": (
            bench.median(real_rounds) / med_wall if real_rounds else None
        ),
        "median_driver_cpu_s": bench.median([r["driver_cpu_s"] for r in runs]),
        "median_trial_overhead_ms": bench.median([r["mean_trial_overhead_ms"] for r in runs]),
    }
    targets = {
        "within 5% of ideal": summary["median_vs_ideal"] <= 1.05,
        ">= 1.5x faster than rounds": summary["median_speedup_vs_rounds"] >= 1.5,
    }
    print()
    print("| schedule | wall s | vs ideal |")
    print("|---|---:|---:|")
    print(f"| greedy asynchronous ideal (simulated, no overhead) | {ideal:.2f} | 1.000 |")
    print(
        f"| **SparkExecutor, measured** (median of {len(runs)}) | {med_wall:.2f} | "
        f"{summary['median_vs_ideal']:.3f} |"
    )
    print(f"| synchronous rounds (simulated, no overhead) | {rounds:.2f} | {rounds / ideal:.3f} |")
    if real_rounds:
        rr = summary["median_rounds_measured_s"]
        print(
            f"| synchronous rounds, measured ({args.trials // args.slots} optimize calls) | "
            f"{rr:.2f} | {rr / ideal:.3f} |"
        )
    print()
    print(
        f"SparkExecutor: {100 * (summary['median_vs_ideal'] - 1):+.1f}% vs ideal, "
        f"{summary['median_speedup_vs_rounds']:.2f}x faster than simulated rounds"
        + (
            f", {summary['median_speedup_vs_rounds_measured']:.2f}x faster than measured rounds"
            if real_rounds
            else ""
        )
        + f"; mean per-trial overhead {summary['median_trial_overhead_ms']:.1f} ms"
    )
    for target, met in targets.items():
        print(f"target {target}: {'MET' if met else 'MISSED'}")

    out = bench.write_results(
        "utilization",
        {
            "machine": machine,
            "params": vars(args),
            "session": {"master": spark.sparkContext.master, "start_s": session_start},
            "warmup_s": warmup,
            "durations": durations,
            "runs": runs,
            "rounds_measured_s": real_rounds,
            "summary": summary,
            "targets": targets,
        },
    )
    print(f"results: {out}")
    spark.stop()


if __name__ == "__main__":
    main()
