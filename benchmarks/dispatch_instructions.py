"""The driver's CPU instructions per trial, counted by valgrind (deterministic, unlike time).

On a shared 2-core machine, trials per second and CPU seconds move by 30% and more between
two runs of the same code, which hides changes of a few percent. Instructions do not: this
runs ``dispatch.py``'s workloads (``SparkExecutor(n_workers=2)`` on the embedded local[2]
session, InMemoryStorage, RandomSampler, MedianPruner) under ``valgrind --tool=callgrind`` in
the driver process, at two sizes, and reports the difference per trial: everything the
driver does per trial (the service, the run, the sampler, the pruner, Spark's own driver
side), with start-up and warm-up cancelling out.

Compare two versions by running it from two worktrees, one after the other::

    git worktree add /tmp/old <commit>
    (cd /tmp/old && PYTHONPATH=/tmp/old python /path/to/benchmarks/dispatch_instructions.py)
    PYTHONPATH=. python benchmarks/dispatch_instructions.py

Needs valgrind (``apt-get install -y valgrind``); about 3 minutes per workload.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench
import dispatch

WORKLOADS = {"noop": dispatch.noop_objective, "typical": dispatch.typical_objective}


def inner(workload: str, n_trials: int) -> None:
    """One process, as measured: start Spark, warm up, then one optimize of ``n_trials``."""
    import optuna
    from pyspark import cloudpickle

    from optuna_spark import SparkExecutor

    cloudpickle.register_pickle_by_value(dispatch)  # Spark's workers cannot import it by name
    bench.quiet()
    spark = bench.local_session(2)
    for n in (20, n_trials):  # the first call warms up Spark's Python workers
        study = optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.MedianPruner()
        )
        t0 = time.perf_counter()
        SparkExecutor(spark, n_workers=2).optimize(study, WORKLOADS[workload], n_trials=n)
    states = collections.Counter(t.state.name for t in study.trials)
    print(json.dumps({"states": states, "wall_s": time.perf_counter() - t0}))
    spark.stop()


def instructions(workload: str, n_trials: int) -> tuple[int, dict[str, Any]]:
    """Instructions of the whole driver process for ``inner(workload, n_trials)``."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            os.path.abspath(__file__),
            "--inner",
            workload,
            str(n_trials),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    assert match is not None, out.stderr[-2000:]
    return int(match.group(1)), json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["typical", "noop"])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=600)
    parser.add_argument("--inner", nargs=2, metavar=("WORKLOAD", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default="dispatch-instructions")
    args = parser.parse_args()
    if args.inner:
        inner(args.inner[0], int(args.inner[1]))
        return

    machine = bench.machine()
    bench.print_machine(machine)
    results: dict[str, Any] = {"machine": machine, "args": vars(args)}
    for workload in args.workloads:
        small, small_info = instructions(workload, args.small)
        large, large_info = instructions(workload, args.large)
        per_trial = (large - small) / (args.large - args.small)
        results[workload] = {
            "instructions_per_trial": per_trial,
            "small": [small, small_info],
            "large": [large, large_info],
        }
        print(
            f"{workload:>8}: {per_trial / 1e6:.3f} M instructions per trial "
            f"(states at {args.large}: {large_info['states']})",
            flush=True,
        )
    print(f"wrote {bench.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
