"""A Spark Connect server on 127.0.0.1 (``local[3,4]``), and a Connect session to it.

The server runs in a process of its own, as on a real deployment: a Connect client session
cannot start while a classic session runs in the same process, and marks the process as
"Connect mode": these tests run last (``tests/conftest.py`` orders them), stop the classic
session first, and clear the mark when they end.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._helpers import start_connect_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Two workers, and the coordinator's task when it runs in the cluster. The executors'
    # Python workers unpickle objectives defined in the tests package.
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    server, url = start_connect_server(
        tmp_path_factory.mktemp("spark-connect"), 3, {"PYTHONPATH": pythonpath}
    )
    try:
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


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
