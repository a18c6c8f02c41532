"""Many studies on one pool: ``optimize_many`` against a loop of ``optimize`` calls and one
``optimize`` per study in threads, on the same local Spark session.

Three parts, all on one ``local[N]`` session (sleeping trials need slots, not cores):

1. **Throughput and fairness**: ``--studies`` studies x ``--trials`` trials that sleep
   ``--seconds`` each, RandomSampler, on ``--slots`` slots. Systems:

   - ``optimize_many``: ``SparkExecutor(n_workers=N).optimize_many(studies, f, n_trials=T)``;
   - ``loop``: ``for study in studies: executor.optimize(study, f, n_trials=T)`` (each a Spark
     job of ``min(N, T)`` tasks, one after the other);
   - ``threads``: a thread pool of N threads, each running ``optimize(study, f, n_trials=T)``
     with one worker per study (N studies at once, each its own Spark job and service).

   Utilization is the ideal (``studies * trials * seconds / slots``) over the wall time, job
   start-ups included; fairness is the slowest study's trial rate over the fastest's, a
   study's rate being its trials over the span from its first trial's start to its last
   trial's end.
2. **Sample efficiency**: ``--tpe-studies`` studies of 20 trials with TPE (a different
   shifted quadratic in 4 dimensions per study, 50 ms per trial), ``optimize_many`` with
   ``max_concurrent_trials=1`` and without a cap: each study's best value after its 20
   trials, averaged over studies and ``--tpe-repeats`` seeds (lower is better). Fewer
   studies than slots by default: with as many studies as slots or more, the fair share
   alone keeps about one trial per study in flight, cap or not.
3. **Ray Tune's scalability run, scaled**: one study of ``--ray-trials`` trials of 1 s on 16
   slots with ``optimize`` (Ray's release test: 10,000 one-second trials on 16 slots in 715 s,
   14% over the 625 s minimum).

Run from the repository root (about 10 minutes with the defaults on 2 cores)::

    .venv/bin/python benchmarks/pool.py
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench


def sleeper(seconds: float) -> Any:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(seconds)
        return x

    return objective


def shifted_quadratic(trial: Any) -> float:
    """Each study's own optimum: study ``tpe-<k>`` is shifted by ``k`` in each dimension. It
    takes 50 ms, so that trials of one study really are in flight together."""
    shift = (int(trial.study.study_name.rsplit("-", 1)[1]) % 7) - 3
    xs = [trial.suggest_float(f"x{i}", -10.0, 10.0) for i in range(4)]
    time.sleep(0.05)
    return sum((x - shift) ** 2 for x in xs)


def _studies(prefix: str, n: int, sampler: Any) -> list[Any]:
    import optuna

    storage = optuna.storages.InMemoryStorage()
    return [
        optuna.create_study(study_name=f"{prefix}-{k}", storage=storage, sampler=sampler(k))
        for k in range(n)
    ]


def _fairness(studies: list[Any]) -> dict[str, float]:
    rates = []
    for study in studies:
        trials = study.trials
        start = min(t.datetime_start for t in trials)
        end = max(t.datetime_complete for t in trials)
        rates.append(len(trials) / max(1e-9, (end - start).total_seconds()))
    return {"slowest_over_fastest_rate": min(rates) / max(rates)}


def part_throughput(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from optuna_spark import SparkExecutor

    n, t, seconds = args.studies, args.trials, args.seconds
    ideal = n * t * seconds / args.slots
    objective = sleeper(seconds)
    out: dict[str, Any] = {"ideal_s": ideal}

    def random_sampler(k: int) -> Any:
        return optuna.samplers.RandomSampler(seed=k)

    def record(name: str, wall: float, studies: list[Any]) -> None:
        assert all(len(s.trials) == t for s in studies), name
        out[name] = {"wall_s": wall, "utilization": ideal / wall, **_fairness(studies)}
        print(
            f"{name:>14}: {wall:7.1f} s  utilization {ideal / wall:6.1%}  "
            f"slowest/fastest study rate {out[name]['slowest_over_fastest_rate']:.2f}",
            flush=True,
        )

    studies = _studies("many", n, random_sampler)
    t0 = time.perf_counter()
    SparkExecutor(spark, n_workers=args.slots).optimize_many(studies, objective, n_trials=t)
    record("optimize_many", time.perf_counter() - t0, studies)

    studies = _studies("loop", n, random_sampler)
    executor = SparkExecutor(spark, n_workers=args.slots)
    t0 = time.perf_counter()
    for study in studies:
        executor.optimize(study, objective, n_trials=t)
    record("loop", time.perf_counter() - t0, studies)

    studies = _studies("threads", n, random_sampler)
    one = SparkExecutor(spark, n_workers=1)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.slots) as pool:
        for done in [pool.submit(one.optimize, s, objective, n_trials=t) for s in studies]:
            done.result()
    record("threads", time.perf_counter() - t0, studies)
    return out


def part_sample_efficiency(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from optuna_spark import SparkExecutor

    out: dict[str, Any] = {}
    for cap in (1, None):
        bests, walls = [], []
        for seed in range(args.tpe_repeats):
            studies = _studies(
                f"tpe-{cap}-{seed}-x",
                args.tpe_studies,
                lambda k, seed=seed: optuna.samplers.TPESampler(seed=1000 * seed + k),
            )
            t0 = time.perf_counter()
            SparkExecutor(spark, n_workers=args.slots).optimize_many(
                studies, shifted_quadratic, n_trials=20, max_concurrent_trials=cap
            )
            walls.append(time.perf_counter() - t0)
            bests.append(statistics.mean(s.best_value for s in studies))
        key = f"max_concurrent_trials={cap}"
        out[key] = {
            "mean_best_value": statistics.mean(bests),
            "per_repeat": bests,
            "median_wall_s": statistics.median(walls),
        }
        print(
            f"{key:>26}: mean best value after 20 trials {statistics.mean(bests):.2f} "
            f"(repeats {', '.join(f'{b:.2f}' for b in bests)}), "
            f"median wall {statistics.median(walls):.1f} s"
        )
    return out


def part_ray_scaled(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from optuna_spark import SparkExecutor

    spark = bench.local_session(16)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    minimum = args.ray_trials * 1.0 / 16
    t0 = time.perf_counter()
    SparkExecutor(spark, n_workers=16).optimize(study, sleeper(1.0), n_trials=args.ray_trials)
    wall = time.perf_counter() - t0
    print(f"{args.ray_trials} trials of 1 s on 16 slots: {wall:.1f} s, minimum {minimum:.1f} s")
    return {"trials": args.ray_trials, "wall_s": wall, "minimum_s": minimum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--tpe-studies", type=int, default=2)
    parser.add_argument("--tpe-repeats", type=int, default=10)
    parser.add_argument("--ray-trials", type=int, default=1000, help="0 skips part 3")
    parser.add_argument("--parts", nargs="+", default=["throughput", "tpe", "ray"])
    parser.add_argument("--out", default="pool")
    args = parser.parse_args()

    bench.quiet()
    machine = bench.machine()
    bench.print_machine(machine)
    spark = bench.local_session(args.slots)
    from optuna_spark import SparkExecutor

    warm = _studies("warm", 2, lambda k: None)
    SparkExecutor(spark, n_workers=args.slots).optimize_many(warm, sleeper(0.0), n_trials=8)

    results: dict[str, Any] = {"machine": machine, "args": vars(args)}
    if "throughput" in args.parts:
        results["throughput"] = part_throughput(spark, args)
    if "tpe" in args.parts:
        results["sample_efficiency"] = part_sample_efficiency(spark, args)
    if args.ray_trials and "ray" in args.parts:
        spark.stop()
        results["ray_scaled"] = part_ray_scaled(args)
    print(f"wrote {bench.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
