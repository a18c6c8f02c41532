"""A Spark standalone master and two workers on 127.0.0.1, from the pyspark package."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._helpers import free_port
from tests._helpers import wait_port


@pytest.fixture(scope="session")
def standalone_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``spark://127.0.0.1:PORT`` with two two-core workers; stop them afterwards."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    spark_class = str(spark_home / "bin" / "spark-class")
    work = tmp_path_factory.mktemp("spark-standalone")
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
        "SPARK_WORKER_DIR": str(work / "work"),
        "SPARK_LOG_DIR": str(work / "logs"),
        "PYSPARK_PYTHON": sys.executable,
    }
    # Each worker offers one (pretend) GPU, found by a discovery script, so that GPU-aware
    # task placement through Spark resources is exercised without a GPU.
    discovery = work / "gpus.sh"
    discovery.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    discovery.chmod(0o755)
    env["SPARK_WORKER_OPTS"] = (
        "-Dspark.worker.resource.gpu.amount=1 "
        f"-Dspark.worker.resource.gpu.discoveryScript={discovery}"
    )
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    common = ["--host", "127.0.0.1", "--webui-port", str(free_port())]
    procs = []
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
        yield url
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
