"""Hostile reads: a worker's trials/s while other connections read a large study in a loop.

One real ``StudyServer`` + ``StudyRun`` (in-memory storage, random sampler) serves one worker
process running ``run_worker`` (each trial suggests a float, reports it and asks
``should_prune``: four round trips). Beside it, ``--readers`` client processes, each holding
the server's secret (a buggy worker, a dashboard polling without a cache), read every trial of
a ``--trials``-trial study in a loop (``GetTrials`` from the first trial, the most a request
can ask). It prints the worker's trials/s without readers and with them, for each repeat,
their medians and the ratio.

Run (about a minute)::

    .venv/bin/python benchmarks/hostile_reads.py
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/hostile_reads.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from typing import Any

import optuna
from optuna.distributions import FloatDistribution

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import run_worker
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    trial.report(x, 0)
    trial.should_prune()
    return x


def _worker(spec: Any) -> None:
    run_worker(spec, _objective)


def _reader(endpoint: Any, study_id: int) -> None:
    conn = Connection(endpoint)
    while True:
        conn.call(m.GetTrials(study_id, [], -1))


def _finished(run: StudyRun, n: int, deadline: float) -> None:
    while run.n_finished < n:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not start")
        time.sleep(0.05)


def measure(n_readers: int, n_trials: int, seconds: float) -> float:
    """The worker's trials/s over ``seconds`` while ``n_readers`` read the big study."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    server = StudyServer(optuna.storages.InMemoryStorage()).start()
    big = optuna.create_study(storage=server.storage, study_name="big")
    distribution = {"a": FloatDistribution(0, 1)}
    big.add_trials(
        optuna.trial.create_trial(params={"a": 0.5}, distributions=distribution, value=1.0)
        for _ in range(n_trials)
    )
    study = optuna.create_study(storage=server.storage, sampler=optuna.samplers.RandomSampler(0))
    run = StudyRun(study, n_trials=10**7)
    server.add_run(run)
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=_worker, args=(run.worker_spec(server.endpoint),), daemon=True)
    readers = [
        ctx.Process(target=_reader, args=(server.endpoint, big._study_id), daemon=True)
        for _ in range(n_readers)
    ]
    try:
        worker.start()
        _finished(run, 20, time.monotonic() + 60)
        for reader in readers:
            reader.start()
        time.sleep(2.0)  # the readers connect and loop (past any burst the server allows)
        n0, t0 = run.n_finished, time.monotonic()
        time.sleep(seconds)
        return (run.n_finished - n0) / (time.monotonic() - t0)
    finally:
        for process in [worker, *readers]:
            process.kill()
        run.stop()
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--trials", type=int, default=3000, help="trials in the study they read")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    quiet, loud = [], []
    for i in range(args.repeats):
        quiet.append(measure(0, args.trials, args.seconds))
        loud.append(measure(args.readers, args.trials, args.seconds))
        print(f"repeat {i}: {quiet[-1]:.0f} trials/s alone, {loud[-1]:.0f} with readers")
    ratio = statistics.median(loud) / statistics.median(quiet)
    print(
        f"median: {statistics.median(quiet):.0f} trials/s alone, "
        f"{statistics.median(loud):.0f} with {args.readers} readers of a {args.trials}-trial "
        f"study: {ratio:.2f} of alone"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "alone": quiet, "with_readers": loud}, f, indent=2)


if __name__ == "__main__":
    main()
