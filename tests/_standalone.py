"""A Spark standalone master and two workers on 127.0.0.1, started from the pyspark package
(for the cluster tests and the chaos benchmark), and the processes a cluster runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests._helpers import free_port
from tests._helpers import wait_port


@contextlib.contextmanager
def standalone_cluster(
    work: Path, worker_opts: str = ""
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A master and two two-core workers on 127.0.0.1 (their processes: master first)."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    spark_class = str(spark_home / "bin" / "spark-class")
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
        "SPARK_WORKER_DIR": str(work / "work"),
        "SPARK_LOG_DIR": str(work / "logs"),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_OPTS": worker_opts,
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    common = ["--host", "127.0.0.1", "--webui-port", str(free_port())]
    procs: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(args: list[str], name: str) -> None:
        log = open(work / f"{name}.log", "wb")  # noqa: SIM115 (closed below)
        logs.append(log)
        procs.append(
            subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        )

    try:
        start(["org.apache.spark.deploy.master.Master", *common, "--port", str(port)], "master")
        wait_port(port, 60)
        for i in range(2):
            start(
                [
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--webui-port",
                    str(free_port()),
                    "--cores",
                    "2",
                    "--memory",
                    "1g",
                ],
                f"worker{i}",
            )
        yield url, procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def children() -> dict[int, list[int]]:
    """Each process's children, from ``/proc``."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            found.setdefault(parent, []).append(int(entry.name))
    return found


def executors_of(worker_pids: list[int]) -> list[int]:
    """The executor JVMs the standalone workers ``worker_pids`` launched."""
    out = []
    for pid in [c for w in worker_pids for c in children().get(w, [])]:
        try:
            if b"CoarseGrainedExecutorBackend" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue
    return out
