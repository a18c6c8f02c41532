"""Shared helpers of the SparkExecutor benchmarks: the machine, the session, results files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def quiet() -> None:
    """No per-trial log lines: printing them would cost every system the same, and a lot."""
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("py4j", "hyperopt", "mlflow", "alembic", "optuna_spark"):
        logging.getLogger(name).setLevel(logging.ERROR)


def machine() -> dict[str, Any]:
    """What this ran on: cores, CPU model, memory, versions, date and the load at start."""
    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem_gib = None
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem_gib = round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        pass
    java = "unknown"
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        java = (out.stderr or out.stdout).splitlines()[0].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    versions = {}
    for name in ("optuna", "pyspark", "optuna_spark", "hyperopt", "mlflow"):
        versions[name] = _version(name)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "java": java,
        **versions,
    }


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return None


def local_session(n_slots: int, extra_env: dict[str, str] | None = None) -> Any:
    """A local Spark session with ``n_slots`` slots, as SparkExecutor embeds it.

    It is ``SparkExecutor(n_workers=n_slots).spark``: the embedded default
    (``local[n, retries]``, Python workers on this interpreter). ``extra_env`` is set in this
    process before the JVM starts, so local Python workers inherit it too.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in (extra_env or {}).items():
        os.environ[key] = value
    from optuna_spark import SparkExecutor

    return SparkExecutor(n_workers=n_slots).spark


def jvm_pid(spark: Any) -> int | None:
    """The pid of the session's JVM (in local mode it hosts the executors too)."""
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    except Exception:
        return None


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``); 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds so far of every live descendant of ``pid`` (Spark's Python
    daemon and workers, when ``pid`` is the JVM); 0 if unknown."""
    if pid is None:
        return 0.0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        total += proc_cpu_s(child)
        todo.extend(children.get(child, []))
    return total


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def print_machine(m: dict[str, Any]) -> None:
    print(
        f"# {m['date']}  {m['nproc']} x {m['cpu']}, {m['mem_gib']} GiB, load {m['loadavg']}\n"
        f"# Python {m['python']}, {m['java']}, optuna {m['optuna']}, pyspark {m['pyspark']}, "
        f"optuna-spark {m['optuna_spark']}"
    )
