"""What the driver's service costs per trial, against Optuna in-process.

A no-op objective (2 ``suggest_float``, 3 ``report`` + ``should_prune``) runs

* through the service: a ``StudyServer`` + ``StudyRun`` on the driver, 2 worker OS
  processes running ``run_worker`` (what each Spark task runs), and
* in-process: ``study.optimize(objective, n_jobs=2)``,

on the same storage and sampler (RandomSampler; no pruner, so that the pruner's own cost does
not hide the wire's): InMemoryStorage, and a JournalStorage file. Throughput is counted from
the first trial's start to the last trial's end (worker process start-up is not a per-trial
cost). The per-call latency is the median of a ``ping`` loop on one ``Connection``.

Run: ``python benchmarks/rpc_overhead.py [--trials 2000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker
from optuna_spark.wire import Connection
from optuna_spark.wire import messages as m

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench  # the benchmarks' shared helpers

N_WORKERS = 2
STORAGE_NAMES = {"inmemory": "InMemory + Random", "journal": "Journal file + Random"}


def objective(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", -10, 10)
    for step in range(3):
        trial.report(x + step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x * x + y


def _worker_main(spec: WorkerSpec) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_worker(spec, objective)


def _make_storage(kind: str, tmpdir: str) -> BaseStorage:
    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    path = os.path.join(tmpdir, f"journal-{time.monotonic_ns()}.log")
    return JournalStorage(JournalFileBackend(path))


def _new_study(storage: BaseStorage, seed: int) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.NopPruner(),
    )


def _trials_per_second(study: optuna.Study, n_trials: int) -> float:
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n_trials, (len(trials), n_trials)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    end = max(t.datetime_complete for t in trials if t.datetime_complete is not None)
    return n_trials / (end - start).total_seconds()


def run_service(kind: str, n_trials: int, tmpdir: str, seed: int) -> float:
    storage = _make_storage(kind, tmpdir)
    with StudyServer(storage) as server:
        study = _new_study(server.storage, seed)
        run = StudyRun(study, n_trials=n_trials)
        server.add_run(run)
        spec = WorkerSpec(server.endpoint, run.run_id)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker_main, args=(spec,)) for _ in range(N_WORKERS)]
        for proc in procs:
            proc.start()
        if not run.wait(600):
            raise RuntimeError("The service run did not finish in 600 s.")
        for proc in procs:
            proc.join(60)
        if run.error is not None:
            raise run.error
        return _trials_per_second(study, n_trials)


def run_in_process(kind: str, n_trials: int, tmpdir: str, seed: int) -> float:
    study = _new_study(_make_storage(kind, tmpdir), seed)
    study.optimize(objective, n_trials=n_trials, n_jobs=N_WORKERS)
    return _trials_per_second(study, n_trials)


def ping_latency_us(n_calls: int = 5000) -> float:
    """Median round trip of one ``ping`` on an idle server, in microseconds."""
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        conn = Connection(server.endpoint)
        try:
            for _ in range(200):  # warm up
                conn.call(m.Ping())
            samples = []
            for _ in range(n_calls):
                t0 = time.perf_counter_ns()
                conn.call(m.Ping())
                samples.append(time.perf_counter_ns() - t0)
        finally:
            conn.close()
    return statistics.median(samples) / 1000


def _median_of(fn: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    values = [fn() for _ in range(repeats)]
    return statistics.median(values), values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storages", nargs="+", default=list(STORAGE_NAMES))
    args = parser.parse_args(argv)
    bench.quiet()

    m = bench.machine()
    print(
        f"# {m['date']}: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"Optuna {m['optuna']}, load average {m['loadavg'][0]:.2f}; "
        f"{args.trials} trials x {args.repeats} repeats (medians), {N_WORKERS} workers"
    )
    latency = ping_latency_us()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for kind in args.storages:
            service, s_all = _median_of(
                functools.partial(run_service, kind, args.trials, tmpdir, 0), args.repeats
            )
            inproc, i_all = _median_of(
                functools.partial(run_in_process, kind, args.trials, tmpdir, 0), args.repeats
            )
            rows.append(
                {
                    "storage": STORAGE_NAMES[kind],
                    "service_trials_per_s": service,
                    "in_process_trials_per_s": inproc,
                    "overhead_ms_per_trial": 1000 / service - 1000 / inproc,
                    "service_runs": s_all,
                    "in_process_runs": i_all,
                }
            )

    print()
    print(
        "| storage + sampler | service, 2 worker processes (trials/s) "
        "| in-process, n_jobs=2 (trials/s) | overhead per trial (ms) |"
    )
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['storage']} | {r['service_trials_per_s']:,.0f} "
            f"| {r['in_process_trials_per_s']:,.0f} | {r['overhead_ms_per_trial']:+.2f} |"
        )
    print()
    print(f"ping round trip on one connection (median of 5000): {latency:.0f} us")
    for r in rows:
        runs = ", ".join(f"{v:.0f}" for v in r["service_runs"])
        inruns = ", ".join(f"{v:.0f}" for v in r["in_process_runs"])
        print(f"# {r['storage']}: service runs {runs}; in-process runs {inruns}")
    out = bench.write_results(
        "rpc_overhead",
        {
            "machine": m,
            "loadavg_at_end": os.getloadavg(),
            "trials_per_run": args.trials,
            "repeats": args.repeats,
            "workers": N_WORKERS,
            "ping_median_us": latency,
            "results": rows,
        },
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
