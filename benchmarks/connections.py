"""Connections: what each open worker connection costs the driver's service (no Spark).

The service gives every authenticated connection a thread. This measures what that costs as
connections grow: ``--connections`` clients (spread over ``--processes`` OS processes) each
hold one authenticated connection and send a heartbeat every ``--heartbeat`` seconds, as
workers running trials do; a probe client in its own process meanwhile sends ``should_prune``
for a running trial (the request workers wait on most) at a steady rate. For each size it
records the probe's p50 / p99 / max latency, the driver's threads, open file descriptors,
resident and virtual memory, and the driver's CPU per heartbeat.

Run::

    .venv/bin/python benchmarks/connections.py
    .venv/bin/python benchmarks/connections.py --sizes 0 1000 2000 4000 --processes 16
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from typing import Any

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.wire import Connection
from optuna_spark.wire import Endpoint
from optuna_spark.wire import messages as m


def _holders(
    endpoint: Endpoint, run_id: str, n: int, period: float, ready: Any, stop: Any
) -> None:
    """``n`` connections in this process, each heartbeating every ``period`` s (staggered)."""
    conns = [Connection(endpoint) for _ in range(n)]
    for c in conns:
        c.call(m.Heartbeat(run_id, []))  # connected and authenticated
    ready.put(n)
    start = time.monotonic()
    i = 0
    while not stop.is_set():
        # Connection i beats at start + (i / n + k) * period: an even stream of heartbeats.
        for k, c in enumerate(conns):
            due = start + (i + k / max(1, n)) * period
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            c.call(m.Heartbeat(run_id, []))
        i += 1
    for c in conns:
        c.close()


def _probe(endpoint: Endpoint, run_id: str, trial_id: int, seconds: float, out: Any) -> None:
    conn = Connection(endpoint)
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        conn.call(m.ShouldPrune(run_id, trial_id))
        samples.append(time.perf_counter() - t0)
        time.sleep(0.01)
    conn.close()
    out.put(samples)


def _memory() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmSize:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss_mib": out["VmRSS"], "virtual_mib": out["VmSize"]}


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    ctx = multiprocessing.get_context("spawn")
    with StudyServer(storage, handshake_timeout=30.0) as server:
        run = StudyRun(study, heartbeat_grace=3600.0)
        server.add_run(run)
        # One running trial for the probe's should_prune.
        asker = Connection(server.endpoint)
        reply = asker.call(m.Ask(run.run_id, m.WorkerInfo(host="bench", pid=os.getpid())))
        ready, stop, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        per = [size // args.processes + (i < size % args.processes) for i in range(args.processes)]
        holders = [
            ctx.Process(
                target=_holders,
                args=(server.endpoint, run.run_id, n, args.heartbeat, ready, stop),
            )
            for n in per
            if n
        ]
        for p in holders:
            p.start()
        joined = sum(ready.get(timeout=300) for _ in holders)
        cpu0, beats0 = time.process_time(), time.monotonic()
        probe = ctx.Process(
            target=_probe, args=(server.endpoint, run.run_id, reply.trial_id, args.seconds, out)
        )
        probe.start()
        stats = {"threads": threading.active_count(), "open_fds": len(os.listdir("/proc/self/fd"))}
        stats.update(_memory())
        samples = sorted(out.get(timeout=args.seconds + 120))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - beats0
        probe.join()
        stop.set()
        for p in holders:
            p.join(60)
        asker.close()
        run.stop()
        server.remove_run(run)

    def q(p: float) -> float:
        return 1000 * samples[min(len(samples) - 1, int(p * len(samples)))]

    return {
        "connections": joined,
        "probe_n": len(samples),
        "probe_p50_ms": q(0.5),
        "probe_p99_ms": q(0.99),
        "probe_max_ms": 1000 * samples[-1],
        "driver_cpu_share": cpu / wall,
        **stats,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 500, 1000, 2000])
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    ap.add_argument("--seconds", type=float, default=15.0, help="how long the probe runs")
    args = ap.parse_args()
    machine = bench.machine()
    rows = [measure(size, args) for size in args.sizes]
    bench.print_machine(machine)
    print(
        f"\n# heartbeat every {args.heartbeat:g} s per connection; probe: should_prune every "
        f"10 ms for {args.seconds:g} s\n"
    )
    print(
        "| connections | probe p50 ms | p99 ms | max ms | driver threads | open fds "
        "| RSS MiB | virtual MiB | driver CPU share | extra driver CPU per heartbeat |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    # The probe's own requests cost the same at every size: the size-0 row is the baseline.
    base = next((r for r in rows if r["connections"] == 0), None)
    for r in rows:
        per_beat = None
        if base is not None and r["connections"]:
            beats_per_s = r["connections"] / args.heartbeat
            per_beat = 1e6 * (r["driver_cpu_share"] - base["driver_cpu_share"]) / beats_per_s
        print(
            f"| {r['connections']:,} | {r['probe_p50_ms']:.2f} | {r['probe_p99_ms']:.2f} "
            f"| {r['probe_max_ms']:.1f} | {r['threads']:,} | {r['open_fds']:,} "
            f"| {r['rss_mib']:.0f} | {r['virtual_mib']:,.0f} "
            f"| {100 * r['driver_cpu_share']:.1f}% "
            f"| {'-' if per_beat is None else f'{per_beat:.0f} us'} |"
        )
    bench.write_results("connections", {"machine": machine, "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
