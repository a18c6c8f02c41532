"""A chaos run: a study on PostgreSQL optimized on a Spark standalone cluster while a nemesis
injects faults at seeded random times, then an audit of every trial (a Jepsen-style report).

The cluster is a master and two two-core workers on 127.0.0.1 (started here from the pyspark
package, ``spark.task.maxFailures=1000``: every lost Python worker or executor uses one of a
task's attempts); ``--cluster local`` runs on an embedded ``local[2,1000]`` session instead.
Faults, one every 2-6 s (seeded): a Spark Python worker killed (SIGKILL), an executor's JVM
killed (SIGKILL: its Python workers die with it, and the standalone worker starts a new
executor), a Python worker paused (SIGSTOP) past the heartbeat grace then resumed (SIGCONT:
a partition, as the driver sees it, with late messages afterwards), and the database
restarted (a fast shutdown, as a failover). Trials checkpoint every step and resume
(``resume_lost_trials=3``).

The audit: exactly ``n_trials`` trials, none RUNNING, every FAIL with a reason that matches an
injected fault, every COMPLETE value equal to what its objective returned (recorded on the
side, in a file), each step reported once, and the best trial the best of those values.

    .venv/bin/python benchmarks/chaos.py --seeds 0 1 2      # ~12 min
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _spark_bench as bench
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' PostgreSQL helper
from optuna_spark import SparkExecutor
from optuna_spark import checkpoint
from tests._postgres import PostgresServer
from tests._postgres import find_bin_dir
from tests._standalone import children
from tests._standalone import executors_of
from tests._standalone import standalone_cluster

STEPS = 8


def objective(trial: optuna.Trial, sidefile: str) -> float:
    x, y = trial.suggest_float("x", -5, 5), trial.suggest_float("y", 0, 1)
    value = (x - 2) ** 2 + y
    ckpt = checkpoint.load(trial)
    start = 0 if ckpt is None else ckpt.step + 1
    with tempfile.TemporaryDirectory() as tmp:
        for step in range(start, STEPS):
            time.sleep(0.1)
            trial.report(value + (STEPS - step), step)
            Path(tmp, "step").write_text(str(step))
            checkpoint.save(trial, tmp, step=step)
    with open(sidefile, "a") as f:
        f.write(f"{trial.number} {value!r}\n")
    return value


def _python_workers(jvms: list[int]) -> list[int]:
    """Spark's Python worker processes: the children of the JVMs' Python daemons."""
    tree = children()
    return [w for jvm in jvms for daemon in tree.get(jvm, []) for w in tree.get(daemon, [])]


class Nemesis(threading.Thread):
    """Injects seeded faults until stopped; keeps what it did.

    Args:
        seed: Seeds the choice and timing of the faults.
        executors: The executor JVMs now (the driver's own JVM on an embedded session, which
            is never killed).
        db: The study's database.
        grace: The run's heartbeat grace (a pause lasts past it).
        kill_executors: Whether executors' JVMs may be killed.
    """

    def __init__(
        self,
        seed: int,
        executors: Callable[[], list[int]],
        db: PostgresServer,
        grace: float,
        kill_executors: bool,
    ) -> None:
        super().__init__(daemon=True)
        self.rng, self.executors, self.db, self.grace = random.Random(seed), executors, db, grace
        self.kinds = ["kill", "kill", "pause", "db_restart"]
        if kill_executors:
            self.kinds.append("executor_kill")
        self.done = threading.Event()
        self.log: list[dict[str, Any]] = []

    def run(self) -> None:
        while not self.done.wait(self.rng.uniform(2.0, 6.0)):
            kind = self.rng.choice(self.kinds)
            jvms = self.executors()
            workers = _python_workers(jvms)
            victims = jvms if kind == "executor_kill" else workers
            if kind != "db_restart" and not victims:
                continue
            at = time.time()
            if kind == "kill" or kind == "executor_kill":
                os.kill(self.rng.choice(victims), signal.SIGKILL)
            elif kind == "pause":
                victim = self.rng.choice(victims)
                os.kill(victim, signal.SIGSTOP)
                self.done.wait(self.grace + 1.5)
                os.kill(victim, signal.SIGCONT)
            else:
                self.db.stop("fast")
                self.db.start()
            self.log.append({"fault": kind, "at": at, "took_s": time.time() - at})


def audit(study: optuna.Study, n_trials: int, sidefile: str) -> dict[str, Any]:
    trials = study.trials
    returned: dict[int, float] = {}
    for line in Path(sidefile).read_text().splitlines():
        number, value = line.split()
        returned[int(number)] = float(value)
    problems = []
    if len(trials) != n_trials:
        problems.append(f"{len(trials)} trials, not {n_trials}")
    for t in trials:
        if t.state == TrialState.RUNNING:
            problems.append(f"trial {t.number} RUNNING")
        elif t.state == TrialState.FAIL:
            reason = t.system_attrs.get("optuna_spark:fail_reason", "")
            if not reason.startswith("worker lost"):
                problems.append(f"trial {t.number} FAIL without a fault's reason: {reason!r}")
        elif t.state == TrialState.COMPLETE:
            if returned.get(t.number) != t.value:
                problems.append(
                    f"trial {t.number}: {t.value} stored, {returned.get(t.number)} returned"
                )
            if sorted(t.intermediate_values) != list(range(STEPS)):
                problems.append(f"trial {t.number}: steps {sorted(t.intermediate_values)}")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and study.best_value != min(returned[t.number] for t in complete):
        problems.append("the best trial is not the best returned value")
    return {
        "trials": len(trials),
        "states": {s.name: sum(t.state == s for t in trials) for s in TrialState},
        "resumed": sum(bool(t.system_attrs.get("optuna_spark:resumes")) for t in trials),
        "resumes": sum(len(t.system_attrs.get("optuna_spark:resumes", [])) for t in trials),
        "problems": problems,
    }


def run_seed(
    seed: int,
    n_trials: int,
    spark: Any,
    db: PostgresServer,
    executors: Callable[[], list[int]],
    kill_executors: bool,
) -> dict[str, Any]:
    db.drop_and_create_database()
    work = Path(tempfile.mkdtemp(prefix="optuna-spark-chaos-"))
    sidefile = str(work / "returned.txt")
    Path(sidefile).touch()
    study = optuna.create_study(storage=db.url, sampler=optuna.samplers.TPESampler(seed=seed))
    executor = SparkExecutor(
        spark,
        n_workers=2,
        resume_lost_trials=3,
        checkpoint_store=FileSystemArtifactStore(str(work)),
        heartbeat_interval=0.5,
        heartbeat_grace=3.0,
        storage_grace=60.0,
    )
    nemesis = Nemesis(seed, executors, db, 3.0, kill_executors)
    t0 = time.time()
    nemesis.start()
    error = None
    try:
        executor.optimize(study, lambda t: objective(t, sidefile), n_trials=n_trials)
    except Exception as e:  # the audit reports it
        error = repr(e)
    finally:
        nemesis.done.set()
        nemesis.join()
    wall = time.time() - t0
    result = audit(
        optuna.load_study(study_name=study.study_name, storage=db.url), n_trials, sidefile
    )
    shutil.rmtree(work, ignore_errors=True)
    faults: dict[str, int] = {}
    for f in nemesis.log:
        faults[f["fault"]] = faults.get(f["fault"], 0) + 1
    if error is not None:
        result["problems"].append(f"optimize raised {error}")
    return {"seed": seed, "wall_s": wall, "faults": faults, "fault_log": nemesis.log, **result}


def _session(
    cluster: str, root: Path, stack: contextlib.ExitStack
) -> tuple[Any, Callable[[], list[int]]]:
    """The Spark session, and a function listing its executors' JVMs now."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver binds only there
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if cluster == "local":
        # Every lost Python worker uses one of its task's attempts: a chaos run needs more
        # than the embedded session's 4.
        spark = builder.master("local[2,1000]").getOrCreate()
        spark.sparkContext.setLogLevel("OFF")
        jvm = bench.jvm_pid(spark)
        return spark, lambda: [] if jvm is None else [jvm]
    (root / "spark").mkdir()
    url, procs = stack.enter_context(standalone_cluster(root / "spark"))
    spark = (
        builder.master(url)
        .config("spark.task.maxFailures", "1000")
        .config("spark.executor.memory", "512m")
        .getOrCreate()
    )
    stack.callback(spark.stop)
    spark.sparkContext.setLogLevel("OFF")
    workers = [p.pid for p in procs[1:]]
    return spark, lambda: executors_of(workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=200)
    parser.add_argument("--cluster", choices=["standalone", "local"], default="standalone")
    args = parser.parse_args()
    bench.quiet()
    bin_dir = find_bin_dir()
    if bin_dir is None:
        sys.exit("PostgreSQL's binaries are missing: apt-get install postgresql")
    m = bench.machine()
    bench.print_machine(m)
    root = Path(tempfile.mkdtemp(prefix="optuna-spark-chaos-pg-"))
    root.chmod(0o755)
    db = PostgresServer(root / "server", bin_dir)
    db.start()
    db.create_database()
    rows = []
    try:
        with contextlib.ExitStack() as stack:
            spark, executors = _session(args.cluster, root, stack)
            for seed in args.seeds:
                row = run_seed(
                    seed, args.n_trials, spark, db, executors, args.cluster == "standalone"
                )
                rows.append(row)
                problems = row["problems"]
                verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems[:5])
                print(
                    f"seed {seed}: {row['wall_s']:.0f} s, faults {row['faults']}, trials "
                    f"{row['trials']} {row['states']}, {row['resumed']} trials resumed "
                    f"({row['resumes']} resumes): {verdict}",
                    flush=True,
                )
    finally:
        db.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    path = bench.write_results("chaos", {"machine": m, "args": vars(args), "rows": rows})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
