"""Population Based Training: a schedule against fixed hyperparameters, the workers' use, and
a driver killed halfway.

The toy (after Ray Tune's PBT function example): a model's accuracy ``acc`` grows each
step by ``0.02 * closeness(lr)``, where closeness is 1 at the best learning rate and falls to
0 a decade away from it, and the best learning rate moves as the model learns: 0.1 at
``acc = 0``, 0.001 at ``acc = 1`` and after (log-linear). No fixed learning rate keeps up; a
schedule can. Each measurement adds Gaussian noise (sd 0.01). A segment trains
``--steps`` steps from its parent's checkpoint (the accuracy, in a file). Progress stops a
decade away from the best learning rate (``WIDTH``), which moves two decades (``DECADES``).

1. **Schedule against fixed hyperparameters** (in-process, ``study.optimize``): PBT with
   ``--population`` members whose models each train ``--generations`` segments of
   ``--steps`` steps, against random search and TPE with ``population`` trials that each
   train as many steps from scratch with one learning rate: every model trains the same
   number of steps, and PBT trains at most as many in all (an exploit saves a member some
   segments). Compared by the true accuracy of the model each picks (PBT: the best
   member's last segment; the others: the best trial), over ``--seeds`` seeds. The
   **sensitivity** part repeats it on other toys (how far the best learning rate moves,
   how narrow its window is) and perturbation intervals.
2. **Workers' use on Spark**: 8 members x 5 segments of ``--seconds`` s each on 4 workers
   (embedded ``local[4]``): the objectives' time over the workers' time from the first
   segment's start to the last one's end.
3. **A driver killed halfway**: the same population on a SQLite study, run by a driver
   process that is killed (SIGKILL) once half the segments have finished, then by a new
   driver on the same study: the members and lineage it continues, and whether any
   finished segment ran again.

Run from the repository root (about 5 minutes on 2 cores)::

    .venv/bin/python benchmarks/pbt.py
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _spark_bench as bench

NOISE = 0.01
#: The toy's settings: how many decades the best learning rate moves while ``acc`` goes from
#: 0 to 1, and how far from it (in decades) a learning rate still makes progress.
DECADES, WIDTH = 2.0, 1.0


def best_lr(acc: float, decades: float = DECADES) -> float:
    return 10 ** (-1 - decades * min(max(acc, 0.0), 1.0))


def train(
    acc: float, lr: float, steps: int, decades: float = DECADES, width: float = WIDTH
) -> float:
    """``steps`` steps of the toy from ``acc`` at learning rate ``lr``."""
    for _ in range(steps):
        distance = abs(math.log10(lr) - math.log10(best_lr(acc, decades)))
        acc += 0.02 * max(0.0, 1 - distance / width)
    return acc


class Segment:
    """PBT's objective: ``steps`` steps from the parent's checkpoint (a picklable callable)."""

    def __init__(
        self, steps: int, seed: int, seconds: float = 0.0, toy: tuple[float, float] = (2, 1)
    ) -> None:
        self.steps, self.seed, self.seconds, self.toy = steps, seed, seconds, toy

    def __call__(self, trial: Any) -> float:
        from optuna_spark import checkpoint
        from optuna_spark.pbt import get_segment

        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        start = checkpoint.load(trial)
        acc = 0.0 if start is None else float((start.path / "acc.txt").read_text())
        trial.set_user_attr("start", time.time())
        if self.seconds:
            time.sleep(self.seconds)
        acc = train(acc, lr, self.steps, *self.toy)
        trial.set_user_attr("true", acc)
        measured = acc + random.Random(self.seed * 100_003 + trial.number).gauss(0, NOISE)
        segment = get_segment(trial)
        step = (segment.generation + 1) * self.steps
        trial.report(measured, step)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "acc.txt").write_text(repr(acc))
            checkpoint.save(trial, tmp, step=step)
        trial.set_user_attr("end", time.time())
        return measured


def fixed(steps: int, seed: int, toy: tuple[float, float] = (DECADES, WIDTH)) -> Any:
    """The baselines' objective: ``steps`` steps from scratch at one learning rate."""

    def objective(trial: Any) -> float:
        acc = train(0.0, trial.suggest_float("lr", 1e-4, 1.0, log=True), steps, *toy)
        trial.set_user_attr("true", acc)
        return acc + random.Random(seed * 100_003 + trial.number).gauss(0, NOISE)

    return objective


def part_schedule(
    args: argparse.Namespace,
    toy: tuple[float, float] = (DECADES, WIDTH),
    generations: int | None = None,
    steps: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    import optuna

    from optuna_spark.checkpoint import _api
    from optuna_spark.pbt import PBTSampler
    from optuna_spark.pbt import pbt_report

    generations = generations or args.generations
    steps = steps or args.steps
    per_trial = generations * steps
    rows = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            _api.DEFAULT_DIR = Path(tmp)  # this process's checkpoints, removed after
            pbt = optuna.create_study(
                direction="maximize", sampler=PBTSampler(args.population, generations, seed=seed)
            )
            pbt.optimize(Segment(steps, seed, toy=toy))
            report = pbt_report(pbt)
            best = pbt.trials[report.best_trial]  # type: ignore[index]
            row = {
                "seed": seed,
                "pbt": best.user_attrs["true"],
                "pbt_trials": len(pbt.trials),  # at most population x generations
                "pbt_model_steps": len(report.schedule) * steps,
            }
        for name, sampler in (
            ("random", optuna.samplers.RandomSampler(seed=seed)),
            ("tpe", optuna.samplers.TPESampler(seed=seed)),
        ):
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(fixed(per_trial, seed, toy), n_trials=args.population)
            row[name] = study.best_trial.user_attrs["true"]
        rows.append(row)
        if not quiet:
            print(
                f"seed {seed}: PBT {row['pbt']:.3f} ({row['pbt_trials']} segments of {steps} "
                f"steps)  random {row['random']:.3f}  TPE {row['tpe']:.3f} "
                f"({args.population} trials of {per_trial} steps)"
            )
    wins = sum(r["pbt"] > max(r["random"], r["tpe"]) for r in rows)
    summary = {
        "toy": {"decades": toy[0], "width": toy[1]},
        "generations": generations,
        "steps": steps,
        "median": {k: statistics.median(r[k] for r in rows) for k in ("pbt", "random", "tpe")},
        "pbt_wins": wins,
        "seeds": rows,
    }
    medians = ", ".join(f"{k} {v:.3f}" for k, v in summary["median"].items())
    print(
        f"toy {toy}, {generations} x {steps} steps: PBT better than both in {wins} of "
        f"{len(rows)} seeds; medians {medians}"
    )
    return summary


#: The settings the sensitivity part tries: (decades, width, generations, steps).
SENSITIVITY = [(1, 1, 10, 10), (1, 0.5, 10, 10), (1, 0.5, 20, 5), (2, 1, 10, 10), (1, 1, 20, 5)]


def part_sensitivity(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same comparison on other toys and perturbation intervals (100 steps a model)."""
    return [
        part_schedule(args, (decades, width), generations, steps, quiet=True)
        for decades, width, generations, steps in SENSITIVITY
    ]


def part_utilization(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from optuna_spark import SparkExecutor
    from optuna_spark.pbt import PBTSampler

    spark = bench.local_session(4)
    study = optuna.create_study(direction="maximize", sampler=PBTSampler(8, 5, seed=0))
    SparkExecutor(spark, n_workers=4).optimize(study, Segment(10, 0, args.seconds))
    trials = study.trials
    busy = sum(t.user_attrs["end"] - t.user_attrs["start"] for t in trials)
    span = max(t.user_attrs["end"] for t in trials) - min(t.user_attrs["start"] for t in trials)
    utilization = busy / (4 * span)
    print(
        f"{len(trials)} segments of {args.seconds} s on 4 workers: {span:.1f} s, "
        f"utilization {utilization:.1%}"
    )
    spark.stop()
    return {"segments": len(trials), "span_s": span, "utilization": utilization}


_DRIVER = """
import sys, optuna
sys.path.insert(0, {bench_dir!r})
import pbt as b
from optuna_spark import SparkExecutor
from optuna_spark.pbt import PBTSampler
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(study_name="pbt", storage={storage!r}, direction="maximize",
                            sampler=PBTSampler(8, 6, seed=0), load_if_exists=True)
print('started', flush=True)
SparkExecutor(n_workers=4, resume_lost_trials=1).optimize(study, b.Segment(10, 0, {seconds}))
"""


def part_restart(args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from optuna_spark.pbt import get_segment

    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/pbt.db"
        script = _DRIVER.format(
            bench_dir=os.path.dirname(os.path.abspath(__file__)),
            storage=storage,
            seconds=args.seconds,
        )
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": path}
        first = subprocess.Popen([sys.executable, "-c", script], env=env)
        finished: list[Any] = []
        while first.poll() is None:
            try:
                trials = optuna.load_study(study_name="pbt", storage=storage).trials
                finished = [t for t in trials if t.state == TrialState.COMPLETE]
            except KeyError:
                trials = []
            if len(finished) >= 24:  # half of 8 x 6
                first.send_signal(signal.SIGKILL)
                first.wait()
                break
            time.sleep(0.2)
        before = {t.number: t for t in finished}
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
        trials = optuna.load_study(study_name="pbt", storage=storage).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pairs = [(get_segment(t).member, get_segment(t).generation) for t in done]  # type: ignore[union-attr]
    again = [
        t.number
        for t in trials
        if t.number not in before
        and t.state == TrialState.COMPLETE
        and any(
            get_segment(b).member == get_segment(t).member  # type: ignore[union-attr]
            and get_segment(b).generation == get_segment(t).generation  # type: ignore[union-attr]
            for b in before.values()
        )
    ]
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    result = {
        "finished_before_kill": len(before),
        "trials": len(trials),
        "states": {k: v for k, v in states.items() if v},
        "members": sorted({m for m, _ in pairs}),
        "completed_twice": len(pairs) - len(set(pairs)),  # a (member, generation)
        "finished_segments_run_again": again,
        "all_unchanged": all(
            trials[n].user_attrs == before[n].user_attrs and trials[n].params == before[n].params
            for n in before
        ),
    }
    print(f"driver killed after {len(before)} finished segments, then restarted: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5, help="steps per segment")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5, help="a Spark segment's length")
    parser.add_argument(
        "--parts", nargs="+", default=["schedule", "sensitivity", "utilization", "restart"]
    )
    parser.add_argument("--out", default="pbt")
    args = parser.parse_args()

    bench.quiet()
    machine = bench.machine()
    bench.print_machine(machine)
    results: dict[str, Any] = {"machine": machine, "args": vars(args)}
    if "schedule" in args.parts:
        results["schedule"] = part_schedule(args)
    if "sensitivity" in args.parts:
        results["sensitivity"] = part_sensitivity(args)
    if "utilization" in args.parts:
        results["utilization"] = part_utilization(args)
    if "restart" in args.parts:
        results["restart"] = part_restart(args)
    print(f"wrote {bench.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
