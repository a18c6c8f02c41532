"""Growth: driver time per trial from 100 to 10,000 trials, RandomSampler, 2 workers.

A no-op objective (one ``suggest_float``, return it) runs ``--trials`` trials on 2 workers
(local[2]) with RandomSampler. A callback on the driver stamps every finished trial with
``time.perf_counter()`` (wall) and ``time.process_time()`` (the driver process's CPU: the
service threads, sampler, storage and Optuna's bookkeeping). Per window of trials (the
first 100, 100-1,000, then every 1,000) the script reports wall ms/trial and driver CPU
ms/trial. Flat numbers mean the per-trial cost does not grow with the study's history.
Storage: InMemory by default; ``--storage journal`` (a JournalFileBackend file) and
``--storage sqlite`` are there to compare.

Run from the repository root::

    python benchmarks/growth.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench

N_SLOTS = 2


def objective(trial: Any) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def windows(n: int) -> list[tuple[int, int]]:
    """Trial-count windows: (1, 100], (100, 1000], then every 1,000 up to ``n``."""
    bounds = [b for b in (1, 100, *range(1000, n + 1, 1000)) if b <= n]
    if bounds[-1] != n:
        bounds.append(n)
    return list(itertools.pairwise(bounds))


def make_storage(kind: str, tmp: str, i: int) -> Any:
    import optuna

    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    if kind == "journal":
        path = os.path.join(tmp, f"journal-{i}.log")
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    if kind == "sqlite":
        return f"sqlite:///{tmp}/growth-{i}.db"
    raise ValueError(kind)


def one_run(executor: Any, storage: Any, n: int) -> dict[str, Any]:
    import optuna

    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    wall: list[float] = []
    cpu: list[float] = []

    def stamp(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        wall.append(time.perf_counter())
        cpu.append(time.process_time())

    t0, c0 = time.perf_counter(), time.process_time()
    executor.optimize(study, objective, n_trials=n, callbacks=[stamp])
    total_wall, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(wall) == n
    rows = []
    for a, b in windows(n):
        k = b - a
        rows.append(
            {
                "window": f"{a}-{b}",
                "wall_ms_per_trial": 1e3 * (wall[b - 1] - wall[a - 1]) / k,
                "driver_cpu_ms_per_trial": 1e3 * (cpu[b - 1] - cpu[a - 1]) / k,
            }
        )
    return {
        "total_wall_s": total_wall,
        "total_driver_cpu_s": total_cpu,
        "trials_per_s": n / total_wall,
        "windows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--storage", nargs="+", default=["inmemory"], choices=["inmemory", "journal", "sqlite"]
    )
    args = ap.parse_args()

    import optuna

    from optuna_spark import SparkExecutor

    bench.quiet()
    machine = bench.machine()
    bench.print_machine(machine)
    spark = bench.local_session(N_SLOTS)
    executor = SparkExecutor(spark, n_workers=N_SLOTS)
    executor.optimize(optuna.create_study(), objective, n_trials=20)  # start the Python workers
    tmp = tempfile.mkdtemp(prefix="optuna-spark-growth-")

    results: dict[str, Any] = {}
    for kind in args.storage:
        runs = []
        for i in range(args.repeats):
            run = one_run(executor, make_storage(kind, tmp, i), args.trials)
            runs.append(run)
            print(
                f"{kind} run {i + 1}: {args.trials} trials in {run['total_wall_s']:.2f} s "
                f"({run['trials_per_s']:.0f} trials/s), driver CPU "
                f"{run['total_driver_cpu_s']:.2f} s",
                flush=True,
            )
        table = []
        for j, w in enumerate(runs[0]["windows"]):
            table.append(
                {
                    "window": w["window"],
                    "median_wall_ms_per_trial": bench.median(
                        [r["windows"][j]["wall_ms_per_trial"] for r in runs]
                    ),
                    "median_driver_cpu_ms_per_trial": bench.median(
                        [r["windows"][j]["driver_cpu_ms_per_trial"] for r in runs]
                    ),
                }
            )
        steady = table[1:]  # the first window holds the job's start
        first_k = steady[0]["median_driver_cpu_ms_per_trial"]
        last_k = steady[-1]["median_driver_cpu_ms_per_trial"]
        results[kind] = {
            "runs": runs,
            "table": table,
            "driver_cpu_last_over_first_window": last_k / first_k if first_k else None,
        }
        print()
        print(f"{kind}: median of {args.repeats} runs, per window of finished trials")
        print("| trials | wall ms/trial | driver CPU ms/trial |")
        print("|---|---:|---:|")
        for row in table:
            print(
                f"| {row['window']} | {row['median_wall_ms_per_trial']:.3f} | "
                f"{row['median_driver_cpu_ms_per_trial']:.3f} |"
            )
        print(
            f"driver CPU per trial, last window / window {steady[0]['window']}: "
            f"{results[kind]['driver_cpu_last_over_first_window']:.2f}"
        )
        print()

    name = "growth" if args.storage == ["inmemory"] else "growth-" + "-".join(args.storage)
    out = bench.write_results(
        name,
        {
            "machine": machine,
            "params": vars(args),
            "session": {"master": spark.sparkContext.master},
            "results": results,
        },
    )
    print(f"results: {out}")
    spark.stop()


if __name__ == "__main__":
    main()
