"""Load: many simulated workers against one driver service (no Spark).

Worker OS processes, each with threads running the real worker loop (``run_worker``, what
every Spark task runs) against one real ``StudyServer`` + ``StudyRun`` on an in-memory study.
Each trial suggests two floats, then for each of ``--steps`` steps sleeps ``--trial-seconds /
--steps`` and calls ``report`` + ``should_prune``. The study may be pre-loaded with finished
trials (``--preload``) so that TPE costs what it costs in a long study.

It prints and records:

- trials/s against the ideal (workers / trial length) and their ratio, the efficiency;
- p50 / p99 / max latency of ``ask``, ``suggest``, ``should_prune`` and ``tell`` as the
  workers see them (a ``report`` is pipelined: its reply is read by the next call), and of
  every request as the server handles it (``report`` included), lock waits included;
- workers that failed to join, driver CPU per trial, the worker processes' CPU per trial,
  driver threads, open file descriptors and resident memory.

``--callback-seconds S`` adds a callback that sleeps ``S`` seconds per finished trial (an
``MLflowCallback`` writing to a slow server, say); with ``--n-trials`` the run hands out that
many trials instead of running for ``--seconds``. The objectives' span (first trial's start
to last trial's end) then shows whether the callbacks held up the workers; the wall time
includes the callbacks still queued when the last trial ended.

``--sampling workers`` samples in the workers (``StudyRun(sampling="workers")``); ``both``
runs ``driver`` then ``workers`` in one invocation, on fresh studies.

Run (defaults fit a 2-core machine)::

    .venv/bin/python benchmarks/load.py
    .venv/bin/python benchmarks/load.py --sampler tpe --workers 100 --preload 3000
    .venv/bin/python benchmarks/load.py --sampler tpe --sampling both   # side by side
    .venv/bin/python benchmarks/load.py --workers 1000 --processes 16   # a larger machine

To measure another checkout side by side, run the same command with ``PYTHONPATH`` set to
it (the script uses only names both the current and the previous layout export).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker

try:  # the current layout
    from optuna_spark.wire import Connection
except ImportError:  # the previous one
    from optuna_spark._client import Connection  # type: ignore[no-redef]

#: Request names (current: message classes; previous: method strings) -> what the table says.
_LABELS = {
    "Ask": "ask",
    "run.ask": "ask",
    "SuggestFloat": "suggest",
    "run.trial": "suggest",
    "ShouldPrune": "should_prune",
    "run.should_prune": "should_prune",
    "TellValues": "tell",
    "TellPruned": "tell",
    "TellFailed": "tell",
    "run.tell": "tell",
    "Heartbeat": "heartbeat",
    "run.heartbeat": "heartbeat",
    "Report": "report",
    "run.report": "report",
}


def _label(request: Any) -> str:
    name = request if isinstance(request, str) else type(request).__name__
    return _LABELS.get(name, name)


def _objective(steps: int, trial_seconds: float) -> Any:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        x = trial.suggest_float("x", -10, 10)
        y = trial.suggest_float("y", -10, 10)
        for step in range(steps):
            time.sleep(trial_seconds / steps)
            trial.report(x * x + y + step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x * x + y

    return objective


def _worker_process(
    spec: WorkerSpec, threads: int, steps: int, trial_seconds: float, out: Any
) -> None:
    """One OS process of ``threads`` workers; sends back latencies and failures."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    samples: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    real_call = Connection.call

    def timed_call(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_call(self, request, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - t0
            with lock:
                samples[_label(request)].append(elapsed)

    Connection.call = timed_call  # type: ignore[method-assign]
    objective = _objective(steps, trial_seconds)
    failures: list[str] = []

    def one() -> None:
        try:
            run_worker(spec, objective)
        except Exception as e:
            with lock:
                failures.append(f"{type(e).__name__}: {e}")

    pool = [threading.Thread(target=one, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put({"samples": dict(samples), "failures": failures, "cpu_s": time.process_time()})


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    values = sorted(values)

    def q(p: float) -> float:
        return 1000 * values[min(len(values) - 1, int(p * len(values)))]

    return {"n": len(values), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": 1000 * values[-1]}


def _server_timing(server: Any) -> dict[str, list[float]]:
    """Time every request the server handles (current layout only: routes are registered)."""
    timings: dict[str, list[float]] = defaultdict(list)
    routes = getattr(server, "_routes", None)
    if routes is None:
        return timings
    lock = threading.Lock()
    for request_type, handler in list(routes.items()):

        def timed(request: Any, conn_id: int, _handler: Any = handler) -> Any:
            t0 = time.perf_counter()
            try:
                return _handler(request, conn_id)
            finally:
                elapsed = time.perf_counter() - t0
                with lock:
                    timings[_label(request)].append(elapsed)

        server.register(request_type, timed)
    return timings


def _process_stats() -> dict[str, Any]:
    rss_kib = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return {
        "threads": threading.active_count(),
        "open_fds": len(os.listdir("/proc/self/fd")),
        "rss_mib": rss_kib / 1024,
    }


def run_once(args: argparse.Namespace, sampling: str) -> dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.TPESampler(seed=0)
        if args.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=0)
    )
    study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.NopPruner())
    if args.preload:
        dists = {
            "x": optuna.distributions.FloatDistribution(-10, 10),
            "y": optuna.distributions.FloatDistribution(-10, 10),
        }
        rng = random.Random(0)
        trials = []
        for _ in range(args.preload):
            x, y = rng.uniform(-10, 10), rng.uniform(-10, 10)
            trials.append(
                optuna.trial.create_trial(
                    params={"x": x, "y": y}, distributions=dists, value=x * x + y
                )
            )
        study.add_trials(trials)
    server = StudyServer(study._storage, handshake_timeout=30.0)
    server_timings = _server_timing(server)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with server:
        placement = {} if sampling == "driver" else {"sampling": sampling}
        callbacks = []
        if args.callback_seconds:
            callbacks.append(lambda study, trial: time.sleep(args.callback_seconds))
        limit = {"n_trials": args.n_trials} if args.n_trials else {"timeout": args.seconds}
        run = StudyRun(study, heartbeat_grace=60.0, callbacks=callbacks, **limit, **placement)
        server.add_run(run)
        if hasattr(run, "worker_spec"):
            spec = run.worker_spec(server.endpoint, heartbeat_interval=5.0)
        else:  # a checkout from before sampling placement
            spec = WorkerSpec(server.endpoint, run.run_id, heartbeat_interval=5.0)
        per_process = [args.workers // args.processes] * args.processes
        for i in range(args.workers % args.processes):
            per_process[i] += 1
        procs = [
            ctx.Process(
                target=_worker_process, args=(spec, n, args.steps, args.trial_seconds, out)
            )
            for n in per_process
        ]
        cpu0, t0 = time.process_time(), time.perf_counter()
        for p in procs:
            p.start()
        peak = _process_stats()
        while not run.wait(1.0):
            stats = _process_stats()
            peak = {k: max(peak[k], stats[k]) for k in peak}
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        reports = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
        server.remove_run(run)
    finished = [t for t in study.trials[args.preload :] if t.state.is_finished()]
    client: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    for r in reports:
        for k, v in r["samples"].items():
            client[k].extend(v)
        failures.extend(r["failures"])
    # Only trials that ran whole count: the run hands out trials for ``seconds``.
    rate = len(finished) / wall
    starts = [t.datetime_start for t in finished if t.datetime_start is not None]
    ends = [t.datetime_complete for t in finished if t.datetime_complete is not None]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    ideal = args.workers / args.trial_seconds
    return {
        "sampling": sampling,
        "trials": len(finished),
        "wall_s": wall,
        "objectives_span_s": span,
        "trials_per_s": rate,
        "ideal_trials_per_s": ideal,
        "efficiency": rate / ideal,
        "client_latency": {k: _percentiles(v) for k, v in sorted(client.items())},
        "server_latency": {k: _percentiles(v) for k, v in sorted(server_timings.items())},
        "workers_failed": len(failures),
        "failures": failures[:5],
        "driver_cpu_ms_per_trial": 1000 * cpu / max(1, len(finished)),
        "workers_cpu_ms_per_trial": 1000
        * sum(r["cpu_s"] for r in reports)
        / max(1, len(finished)),
        "driver_peak": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--trial-seconds", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sampler", choices=["random", "tpe"], default="random")
    ap.add_argument("--preload", type=int, default=0, help="finished trials in the study first")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long trials are handed out")
    ap.add_argument("--n-trials", type=int, default=0, help="hand out this many (0: --seconds)")
    ap.add_argument("--callback-seconds", type=float, default=0.0, help="a slow callback")
    ap.add_argument("--sampling", choices=["driver", "workers", "both"], default="driver")
    ap.add_argument("--label", default="", help="a name for this run in the results")
    args = ap.parse_args()

    machine = bench.machine()
    placements = ["driver", "workers"] if args.sampling == "both" else [args.sampling]
    results = [run_once(args, sampling) for sampling in placements]
    bench.print_machine(machine)
    for result in results:
        _print(args, result)
    bench.write_results(
        "load" + (f"-{args.label}" if args.label else ""),
        {"machine": machine, "args": vars(args), "runs": results},
    )


def _print(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(
        f"\n# {args.workers} workers in {args.processes} processes, "
        f"{args.trial_seconds:g} s trials x {args.steps} steps, {args.sampler} sampled on the "
        f"{result['sampling']}, preload {args.preload}, {args.seconds:g} s of hand-out "
        f"{args.label}"
    )
    print(
        f"trials {result['trials']} in {result['wall_s']:.1f} s (objectives' span "
        f"{result['objectives_span_s']:.1f} s, callback {args.callback_seconds:g} s/trial): "
        f"{result['trials_per_s']:.1f}/s vs ideal {result['ideal_trials_per_s']:.1f}/s "
        f"= {100 * result['efficiency']:.1f}% efficiency; workers failed to join: "
        f"{result['workers_failed']}"
    )
    print("\n| request | side | n | p50 ms | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|")
    for side in ("client", "server"):
        for name, q in result[f"{side}_latency"].items():
            if q.get("n"):
                print(
                    f"| {name} | {side} | {q['n']} | {q['p50_ms']:.2f} | {q['p99_ms']:.2f} "
                    f"| {q['max_ms']:.1f} |"
                )
    peak = result["driver_peak"]
    print(
        f"\ndriver: {result['driver_cpu_ms_per_trial']:.2f} ms CPU per trial, peak "
        f"{peak['threads']} threads, {peak['open_fds']} open fds, {peak['rss_mib']:.0f} MiB "
        f"RSS; worker processes: {result['workers_cpu_ms_per_trial']:.2f} ms CPU per trial"
    )
    if result["failures"]:
        print("failures:", json.dumps(result["failures"], indent=1))


if __name__ == "__main__":
    main()
