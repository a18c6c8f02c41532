"""Durable trials: what checkpoints cost, and what a resume saves over a re-run.

Every trial has ``--steps`` steps of ``--step-seconds`` of work each (a sleep: the training
itself runs elsewhere, a GPU say, and competes with nothing here), on an embedded Spark
session with 2 workers, checkpoints in a ``FileSystemArtifactStore`` in a temporary
directory.

- **Overhead**: each step saves a ``--megabytes`` checkpoint (random bytes, one file), against
  the same trials saving nothing. Trials' durations come from Optuna's own start and
  completion times.
- **Resume**: the worker of every trial is killed (``os._exit``) right after saving step 10
  (of 20), once per parameter set. ``resume``: ``resume_lost_trials=1``, the trial resumes
  from its checkpoint; ``retry``: ``retry_lost_trials=True``, its parameters run again from
  scratch as a new trial (the behaviour without checkpoints). A parameter set's time is from
  its first start to its completion; ``uninterrupted`` is the same trials never killed.

    .venv/bin/python benchmarks/checkpoint.py          # ~4 min
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _spark_bench as bench
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint


def objective(trial: optuna.Trial, cfg: dict[str, Any]) -> float:
    """``cfg``: steps, step_seconds, megabytes (0: no checkpoint), kill_at, markers."""
    x = trial.suggest_float("x", 0, 1)
    payload = os.urandom(cfg["megabytes"] << 20) if cfg["megabytes"] else b""
    start = 0
    if cfg["megabytes"]:
        ckpt = checkpoint.load(trial)
        start = 0 if ckpt is None else ckpt.step + 1
    marker = Path(cfg["markers"]) / f"{x!r}"  # this parameter set was killed once already
    with tempfile.TemporaryDirectory() as tmp:
        for step in range(start, cfg["steps"]):
            time.sleep(cfg["step_seconds"])
            trial.report(x, step)
            if cfg["megabytes"]:
                Path(tmp, "state.bin").write_bytes(payload)
                checkpoint.save(trial, tmp, step=step)
            if step == cfg["kill_at"] and not marker.exists():
                marker.touch()
                os._exit(1)
    return x


def _seconds(first: FrozenTrial, last: FrozenTrial) -> float:
    assert first.datetime_start is not None and last.datetime_complete is not None
    return (last.datetime_complete - first.datetime_start).total_seconds()


def run(mode: str, args: argparse.Namespace, spark: Any) -> dict[str, Any]:
    """One optimization in ``mode``; returns each parameter set's time, first start to end."""
    with tempfile.TemporaryDirectory() as tmp:
        store_dir, markers = Path(tmp, "store"), Path(tmp, "markers")
        store_dir.mkdir()
        markers.mkdir()
        cfg = {
            "steps": args.steps,
            "step_seconds": args.step_seconds,
            "megabytes": 0 if mode in ("no checkpoint", "retry") else args.megabytes,
            "kill_at": args.kill_at if mode in ("resume", "retry") else -1,
            "markers": str(markers),
        }
        executor = SparkExecutor(
            spark,
            n_workers=2,
            resume_lost_trials=1 if mode == "resume" else 0,
            retry_lost_trials=mode == "retry",
            checkpoint_store=FileSystemArtifactStore(str(store_dir)),
        )
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        n_trials = args.trials * (2 if mode == "retry" else 1)  # a retry is a trial of its own
        executor.optimize(study, lambda t: objective(t, cfg), n_trials=n_trials)
    by_params: dict[float, list[FrozenTrial]] = {}
    for t in study.trials:
        by_params.setdefault(t.params["x"], []).append(t)
    times, gaps = [], []
    for trials in by_params.values():
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == 1, [t.state for t in trials]
        times.append(_seconds(trials[0], done[0]))
        for resume in done[0].system_attrs.get("optuna_spark:resumes", []):
            resumed = datetime.datetime.fromisoformat(resume["resumed_at"])
            gaps.append(
                (resumed - datetime.datetime.fromisoformat(resume["lost_at"])).total_seconds()
            )
    return {"mode": mode, "seconds": sorted(times), "resume_gaps_s": gaps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--megabytes", type=int, default=10)
    parser.add_argument("--kill-at", type=int, default=10)
    args = parser.parse_args()
    bench.quiet()
    m = bench.machine()
    bench.print_machine(m)
    spark = bench.local_session(2)
    SparkExecutor(spark, n_workers=2).optimize(optuna.create_study(), lambda t: 0.0, n_trials=4)
    rows = [
        run(mode, args, spark)
        for mode in ("no checkpoint", "checkpoint", "uninterrupted", "resume", "retry")
    ]
    median = {r["mode"]: statistics.median(r["seconds"]) for r in rows}
    ideal = args.steps * args.step_seconds
    print(f"\n{args.trials} trials of {args.steps} steps x {args.step_seconds:g} s, 2 workers")
    print("| mode | median seconds per parameter set | vs no checkpoint | runs |")
    print("|---|---:|---:|---|")
    for r in rows:
        ratio = median[r["mode"]] / median["no checkpoint"]
        runs = ", ".join(f"{s:.1f}" for s in r["seconds"])
        print(f"| {r['mode']} | {median[r['mode']]:.2f} | {ratio:.3f}x | {runs} |")
    overhead = median["checkpoint"] / median["no checkpoint"] - 1
    print(f"\ncheckpoint overhead ({args.megabytes} MB every step): {overhead:+.1%} (goal <= 5%)")
    gaps = [g for r in rows for g in r["resume_gaps_s"]]
    restart = statistics.median(gaps) if gaps else 0.0
    bound = 1.15 * median["uninterrupted"] + restart
    print(
        f"resume: {median['resume']:.2f} s against 1.15 x {median['uninterrupted']:.2f} s "
        f"+ {restart:.2f} s from loss to resume (median) = {bound:.2f} s: "
        f"{'MET' if median['resume'] <= bound else 'MISSED'}; retry from scratch: "
        f"{median['retry']:.2f} s (ideal trial {ideal:g} s)"
    )
    path = bench.write_results(
        "checkpoint", {"machine": m, "args": vars(args), "rows": rows, "medians": median}
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
