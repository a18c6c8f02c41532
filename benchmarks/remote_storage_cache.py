"""What one ``RemoteStorage.get_all_trials`` of a large study costs, with and without its cache.

A study of ``--trials`` finished trials (2 float params, a value, 3 intermediate values each)
is built directly in an ``InMemoryStorage`` and served by a ``StudyServer`` on 127.0.0.1, in
this process. Each read is timed on its own, three ways:

* **before**: what every read cost before ``RemoteStorage`` kept finished trials: a full
  ``GetTrials(study_id, [], -1)`` on one persistent ``Connection``, and each returned
  ``TrialData`` turned into a ``FrozenTrial`` (``trial_from_wire``), as the former
  ``RemoteStorage.get_all_trials`` did on every call;
* **after, deepcopy=False**: ``get_all_trials(study_id, deepcopy=False)`` on one
  ``RemoteStorage``; its first call fills the cache and is reported on its own row;
* **after, deepcopy=True**: the same with ``deepcopy=True`` (Optuna's default for
  ``study.trials``), on a fresh ``RemoteStorage``.

The second study adds ``--running`` RUNNING trials among the newest ones, so that every
read fetches those again: the wire cost of a read follows what can still change, not the
study's size.

Each mode runs ``--reads`` reads per repeat, unless that would take longer than
``--max-seconds`` (judged from one warm-up read): then it runs as many as fit, but at least
``--min-reads``. The table says how many were timed; what is compared is the median latency
of one read (the median over repeats of each repeat's median), so modes timed with fewer
reads compare fairly. reads/s is reads timed / time of the loop (median over repeats). The
bytes are one read's reply frame (``encode_reply`` of the trials it returned + the 4-byte
header), measured once per mode, outside the timed loops.

Run: ``.venv/bin/python benchmarks/remote_storage_cache.py [--trials 10000] [--reads 1000]
[--repeats 3]``. Results: ``benchmarks/results/remote_storage_cache.json``.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import RemoteStorage
from optuna_spark.remote import StudyServer
from optuna_spark.wire import Connection
from optuna_spark.wire import _codec as codec
from optuna_spark.wire import _frames as frames
from optuna_spark.wire import messages as m
from optuna_spark.wire._convert import trial_from_wire

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench  # the benchmarks' shared helpers

DISTRIBUTIONS = {"x": FloatDistribution(-10, 10), "y": FloatDistribution(-10, 10)}
MODES = {
    "before": "before: full GetTrials + trial_from_wire",
    "first_nocopy": "after: first read, fills the cache (deepcopy=False)",
    "nocopy": "after: get_all_trials(deepcopy=False)",
    "first_copy": "after: first read, fills the cache (deepcopy=True)",
    "copy": "after: get_all_trials(deepcopy=True)",
}


@dataclass
class Case:
    """One study served, and what was measured on it."""

    name: str
    study_id: int
    n_trials: int
    n_running: int
    n_reads: dict[str, int] = field(default_factory=dict)
    bytes_per_read: dict[str, int] = field(default_factory=dict)
    median_ms: dict[str, list[float]] = field(default_factory=dict)
    reads_per_s: dict[str, list[float]] = field(default_factory=dict)

    def record(self, mode: str, samples_ns: list[int], loop_ns: int) -> None:
        self.median_ms.setdefault(mode, []).append(statistics.median(samples_ns) / 1e6)
        self.reads_per_s.setdefault(mode, []).append(len(samples_ns) / (loop_ns / 1e9))


def _trial(rng: random.Random, state: TrialState) -> FrozenTrial:
    x, y = rng.uniform(-10, 10), rng.uniform(-10, 10)
    finished = state == TrialState.COMPLETE
    return optuna.trial.create_trial(
        state=state,
        params={"x": x, "y": y},
        distributions=DISTRIBUTIONS,
        value=x * x + y if finished else None,
        intermediate_values={step: x + step for step in range(3)},
    )


def build_study(storage: optuna.storages.BaseStorage, n_trials: int, n_running: int) -> int:
    """A study of ``n_trials`` finished trials; ``n_running`` RUNNING ones among the newest.

    The RUNNING trials are every other one of the newest ``2 * n_running`` trials, as with
    parallel workers: the client must fetch them by id (``include``), not only as "newer than
    the newest finished trial".
    """
    rng = random.Random(0)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(0))
    trials = [_trial(rng, TrialState.COMPLETE) for _ in range(n_trials - n_running)]
    for _ in range(n_running):
        trials += [_trial(rng, TrialState.RUNNING), _trial(rng, TrialState.COMPLETE)]
    study.add_trials(trials)
    assert len(study.get_trials(deepcopy=False)) == n_trials + n_running
    return study._study_id


def reply_bytes(trials: list[m.TrialData]) -> int:
    """The bytes of the reply frame that carried ``trials``."""
    return frames.HEADER.size + len(codec.encode_reply(True, trials))


def full_read(conn: Connection, study_id: int) -> list[FrozenTrial]:
    """What the former ``RemoteStorage.get_all_trials`` did on every call."""
    return [trial_from_wire(t) for t in conn.call(m.GetTrials(study_id, [], -1))]


def time_reads(read: Callable[[], Any], n: int) -> tuple[list[int], int]:
    """Each of ``n`` reads' latency, and the whole loop's (nanoseconds)."""
    samples = []
    start = time.perf_counter_ns()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        read()
        samples.append(time.perf_counter_ns() - t0)
    return samples, time.perf_counter_ns() - start


def _fresh_storage(server: StudyServer) -> RemoteStorage:
    return RemoteStorage.from_endpoint(server.endpoint)


def _recorded_read(storage: RemoteStorage, study_id: int, deepcopy: bool) -> tuple[int, int]:
    """One ``get_all_trials``: (reply frame bytes of its ``GetTrials``, its latency in ns).

    The storage's ``_call`` is wrapped for this call only, to see what came over the wire.
    """
    seen: list[int] = []
    call = storage._call

    def recording_call(request: m.Request) -> Any:
        result = call(request)
        if isinstance(request, m.GetTrials):
            seen.append(reply_bytes(result))
        return result

    storage._call = recording_call  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter_ns()
        storage.get_all_trials(study_id, deepcopy=deepcopy)
        elapsed = time.perf_counter_ns() - t0
    finally:
        del storage._call
    assert len(seen) == 1, seen
    return seen[0], elapsed


def calibrate(case: Case, server: StudyServer, conn: Connection, args: argparse.Namespace) -> None:
    """Bytes per read of each mode, and how many reads each mode can afford."""

    def n_for(one_read_ns: int) -> int:
        fit = int(args.max_seconds * 1e9 / max(one_read_ns, 1))
        return min(args.reads, max(args.min_reads, fit))

    full_read(conn, case.study_id)  # warm up; the second read is the one timed
    t0 = time.perf_counter_ns()
    reply = conn.call(m.GetTrials(case.study_id, [], -1))
    [trial_from_wire(t) for t in reply]
    case.n_reads["before"] = n_for(time.perf_counter_ns() - t0)
    case.bytes_per_read["before"] = reply_bytes(reply)
    for mode, deepcopy in (("nocopy", False), ("copy", True)):
        storage = _fresh_storage(server)
        case.bytes_per_read[f"first_{mode}"], _ = _recorded_read(storage, case.study_id, deepcopy)
        case.n_reads[f"first_{mode}"] = 1
        case.bytes_per_read[mode], one_read = _recorded_read(storage, case.study_id, deepcopy)
        case.n_reads[mode] = n_for(one_read)
        got = storage.get_all_trials(case.study_id, deepcopy=deepcopy)
        assert len(got) == case.n_trials + case.n_running, len(got)
        storage.close()


def run_repeat(case: Case, server: StudyServer, conn: Connection) -> None:
    read = functools.partial(full_read, conn, case.study_id)
    samples, loop = time_reads(read, case.n_reads["before"])
    case.record("before", samples, loop)
    for mode, deepcopy in (("nocopy", False), ("copy", True)):
        storage = _fresh_storage(server)
        read = functools.partial(storage.get_all_trials, case.study_id, deepcopy=deepcopy)
        samples, loop = time_reads(read, 1)
        case.record(f"first_{mode}", samples, loop)
        samples, loop = time_reads(read, case.n_reads[mode])
        case.record(mode, samples, loop)
        storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000, help="finished trials per study")
    parser.add_argument("--running", type=int, default=10, help="RUNNING trials, 2nd study")
    parser.add_argument("--reads", type=int, default=1000, help="reads per mode and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=8.0,
        help="time one mode's reads may take per repeat; slower modes time fewer reads",
    )
    parser.add_argument("--min-reads", type=int, default=5)
    args = parser.parse_args(argv)
    bench.quiet()
    wall0 = time.perf_counter()

    info = bench.machine()
    print(
        f"# {info['date']}: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"Optuna {info['optuna']}, load average {info['loadavg'][0]:.2f}; "
        f"{args.trials} finished trials, up to {args.reads} reads per mode x "
        f"{args.repeats} repeats (medians); server on 127.0.0.1 in this process"
    )
    storage = optuna.storages.InMemoryStorage()
    t0 = time.perf_counter()
    cases = [
        Case("all finished", build_study(storage, args.trials, 0), args.trials, 0),
        Case(
            f"{args.running} RUNNING",
            build_study(storage, args.trials, args.running),
            args.trials,
            args.running,
        ),
    ]
    build_s = time.perf_counter() - t0

    with StudyServer(storage) as server:
        conns = [Connection(server.endpoint) for _ in cases]
        try:
            for case, conn in zip(cases, conns, strict=True):
                calibrate(case, server, conn, args)
            for _ in range(args.repeats):
                for case, conn in zip(cases, conns, strict=True):
                    run_repeat(case, server, conn)
        finally:
            for conn in conns:
                conn.close()
    wall_s = time.perf_counter() - wall0

    print()
    print(
        "| study | mode | reads timed per repeat | median per read (ms) | reads/s "
        "| reply bytes per read | speed-up vs before |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    rows: list[dict[str, Any]] = []
    for case in cases:
        study = f"{case.n_trials:,} finished" + (
            f" + {case.n_running} RUNNING" if case.n_running else ""
        )
        before_ms = statistics.median(case.median_ms["before"])
        for mode, label in MODES.items():
            ms = statistics.median(case.median_ms[mode])
            rps = statistics.median(case.reads_per_s[mode])
            speedup = before_ms / ms
            print(
                f"| {study} | {label} | {case.n_reads[mode]:,} | {ms:,.3f} | {rps:,.1f} "
                f"| {case.bytes_per_read[mode]:,} | {speedup:,.1f}x |"
            )
            rows.append(
                {
                    "study": study,
                    "finished_trials": case.n_trials,
                    "running_trials": case.n_running,
                    "mode": mode,
                    "label": label,
                    "reads_timed_per_repeat": case.n_reads[mode],
                    "median_ms": ms,
                    "reads_per_s": rps,
                    "reply_bytes_per_read": case.bytes_per_read[mode],
                    "speedup_vs_before": speedup,
                    "median_ms_per_repeat": case.median_ms[mode],
                    "reads_per_s_per_repeat": case.reads_per_s[mode],
                }
            )
    print()
    for case in cases:
        if case.n_reads["before"] < args.reads:
            print(
                f"# {case.name}: {case.n_reads['before']} full reads timed per repeat, not "
                f"{args.reads} (each takes about {statistics.median(case.median_ms['before']):.0f}"
                f" ms); the per-read medians are what is compared."
            )
        if case.n_reads["copy"] < args.reads:
            print(
                f"# {case.name}: {case.n_reads['copy']} deepcopy=True reads timed per repeat, "
                f"not {args.reads}, for the same reason."
            )
    print(f"# built the studies in {build_s:.1f} s; whole run {wall_s:.0f} s")
    out = bench.write_results(
        "remote_storage_cache",
        {
            "machine": info,
            "loadavg_at_end": os.getloadavg(),
            "args": vars(args),
            "build_s": build_s,
            "wall_s": wall_s,
            "results": rows,
        },
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
