"""A Spark standalone master and two workers on 127.0.0.1, from the pyspark package."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests._standalone import standalone_cluster


@pytest.fixture(scope="session")
def standalone_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``spark://127.0.0.1:PORT`` with two two-core workers; stop them afterwards."""
    work = tmp_path_factory.mktemp("spark-standalone")
    # Each worker offers one (pretend) GPU, found by a discovery script, so that GPU-aware
    # task placement through Spark resources is exercised without a GPU.
    discovery = work / "gpus.sh"
    discovery.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    discovery.chmod(0o755)
    opts = (
        "-Dspark.worker.resource.gpu.amount=1 "
        f"-Dspark.worker.resource.gpu.discoveryScript={discovery}"
    )
    with standalone_cluster(work, opts) as (url, _):
        yield url


@pytest.fixture
def decommissioning_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A cluster of its own whose workers decommission gracefully on SIGPWR (the test
    decommissions one): its URL and processes (master, worker 0, worker 1)."""
    work = tmp_path_factory.mktemp("spark-decommission")
    with standalone_cluster(work, "-Dspark.decommission.enabled=true") as cluster:
        yield cluster
