"""Spark Connect vs classic: dispatch and utilization, both coordinator placements, one run.

Three configurations, each in a child process of its own (a Connect client marks its whole
process as Connect mode), against the same kind of Spark (``local[3]``: two workers, and the
coordinator's task in the cluster placement) on this machine:

- ``classic``: a classic local session, ``SparkExecutor(n_workers=2)`` (coordinator in the
  driver);
- ``connect-driver``: a Spark Connect server (its own JVM, started by this script) and a
  Connect client session, ``coordinator="driver"``;
- ``connect-cluster``: the same server, ``coordinator="cluster"`` (the run in task 0).

Every study is on a journal file (the cluster placement needs a storage the cluster reads;
the others use the same for a like-for-like comparison). Two workloads, each timed as whole
``optimize`` calls after an untimed warm-up (Spark's Python workers started):

- **dispatch**: ``--trials`` no-op trials (one ``suggest_float``), trials/s, medians of
  ``--repeats``;
- **utilization**: ``--sleep-trials`` trials of lognormal length (median 0.5 s, sigma 0.8,
  fixed seed) on 2 workers: wall time against the greedy asynchronous ideal.

Run::

    .venv/bin/python benchmarks/connect.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench
from utilization import greedy_async_makespan
from utilization import lognormal_durations

CONFIGS = ("classic", "connect-driver", "connect-cluster")
N_WORKERS = 2


def noop(trial: Any) -> float:
    return float(trial.suggest_float("x", 0.0, 1.0))


def sleeper(durations: list[float]) -> Any:
    def objective(trial: Any) -> float:
        time.sleep(durations[trial.number])
        return float(trial.number)

    return objective


def _child(config: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """One configuration's numbers (runs in a child process)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from pyspark.sql import SparkSession

    from optuna_spark import SparkExecutor

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if config == "classic":
        spark = bench.local_session(N_WORKERS + 1)
        coordinator = "driver"
    else:
        assert url is not None
        spark = SparkSession.builder.remote(url).getOrCreate()
        coordinator = config.split("-", 1)[1]
    executor = SparkExecutor(spark, n_workers=N_WORKERS, coordinator=coordinator)  # type: ignore[arg-type]
    folder = Path(tempfile.mkdtemp(prefix="optuna-spark-connect-bench-"))
    count = iter(range(10_000))

    def study() -> Any:
        path = folder / f"{next(count)}.log"
        return optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))))

    def timed(objective: Any, n: int) -> float:
        s = study()
        t0 = time.perf_counter()
        executor.optimize(s, objective, n_trials=n)
        wall = time.perf_counter() - t0
        assert len(s.trials) == n and all(t.state.is_finished() for t in s.trials)
        return wall

    timed(noop, 20)  # warm-up: Spark's Python workers start
    dispatch = [args.trials / timed(noop, args.trials) for _ in range(args.repeats)]
    durations = lognormal_durations(args.sleep_trials, 0.5, 0.8, 3)
    walls = [timed(sleeper(durations), args.sleep_trials) for _ in range(args.repeats)]
    spark.stop()
    return {
        "config": config,
        "dispatch_trials_per_s": dispatch,
        "utilization_wall_s": walls,
        "utilization_ideal_s": greedy_async_makespan(durations, N_WORKERS),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--sleep-trials", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=CONFIGS)
    ap.add_argument("--url")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.url, args)))
        return

    machine = bench.machine()
    work = Path(tempfile.mkdtemp(prefix="optuna-spark-connect-server-"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests._helpers import start_connect_server

    server, url = start_connect_server(work, N_WORKERS + 1)
    rows = []
    try:
        for config in CONFIGS:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    f"--child={config}",
                    f"--url={url}",
                    f"--trials={args.trials}",
                    f"--sleep-trials={args.sleep_trials}",
                    f"--repeats={args.repeats}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"{config} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
        server.wait(60)
    bench.print_machine(machine)
    print(
        f"\n# {N_WORKERS} workers, journal-file studies; dispatch: {args.trials} no-op trials; "
        f"utilization: {args.sleep_trials} lognormal trials (median 0.5 s); medians of "
        f"{args.repeats}\n"
    )
    print("| configuration | no-op trials/s | utilization: wall s | ideal s | efficiency |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        wall = statistics.median(r["utilization_wall_s"])
        print(
            f"| {r['config']} | {statistics.median(r['dispatch_trials_per_s']):.0f} "
            f"| {wall:.2f} | {r['utilization_ideal_s']:.2f} "
            f"| {100 * r['utilization_ideal_s'] / wall:.1f}% |"
        )
    bench.write_results("connect", {"machine": machine, "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
