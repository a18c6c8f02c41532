"""SparkExecutor against a real Spark standalone cluster (master + 2 workers on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.cluster, pytest.mark.timeout(400)]


def test_study_runs_on_standalone_cluster_executors(
    standalone_master: str, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'cluster.db'}"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "tests.cluster._driver", standalone_master, storage],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 30
    assert result["states"] == ["COMPLETE"]
    assert result["steps"] == [3]
    # The trials ran on the cluster's executors, not in the driver.
    assert "driver" not in result["executors"] and "None" not in result["executors"]
    assert len(result["executors"]) >= 1
