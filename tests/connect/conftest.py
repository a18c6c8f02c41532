"""A Spark Connect server on 127.0.0.1 (``local[3,4]``), and a Connect session to it.

The server runs in a process of its own, as on a real deployment: a Connect client session
cannot start while a classic session runs in the same process, and marks the process as
"Connect mode": these tests run last (``tests/conftest.py`` orders them), stop the classic
session first, and clear the mark when they end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._helpers import free_port
from tests._helpers import wait_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("spark-connect")
    port = free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        # The executors' Python workers unpickle objectives defined in the tests package.
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    log = open(work / "server.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            str(spark_home / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master",
            "local[3,4]",  # two workers, and the coordinator's task when it runs there
            "--conf",
            f"spark.connect.grpc.binding.port={port}",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--conf",
            "spark.driver.bindAddress=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            "spark-internal",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, 120)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="package")
def connect_spark(connect_url: str) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    # The classic session of earlier tests must end first (Connect tests are ordered last).
    classic = SparkSession.getActiveSession()
    if classic is not None:
        classic.stop()
    saved = {k: os.environ.get(k) for k in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")}
    session = SparkSession.builder.remote(connect_url).getOrCreate()
    try:
        yield session
    finally:
        session.stop()
        # A remote session leaves the process marked as Connect mode; classic sessions of
        # later tests need the mark gone.
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
