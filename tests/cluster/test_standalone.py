"""SparkExecutor against a real Spark standalone cluster (master + 2 workers on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.cluster, pytest.mark.timeout(400)]


def _run_driver(master: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    storage = f"sqlite:///{tmp_path / 'cluster.db'}"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "tests.cluster._driver", master, storage, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_study_runs_on_standalone_cluster_executors(
    standalone_master: str, tmp_path: Path
) -> None:
    result = _run_driver(standalone_master, tmp_path)
    assert result["n"] == 30
    assert result["states"] == ["COMPLETE"]
    assert result["steps"] == [3]
    # The trials ran on the cluster's executors, not in the driver.
    assert "driver" not in result["executors"] and "None" not in result["executors"]
    assert len(result["executors"]) >= 1
    assert result["gpus"] == ["None"]  # no GPU asked for: none assigned, none exposed
    assert result["cuda_visible"] == ["None"]


def test_gpus_assigned_by_spark_are_recorded_and_exposed(
    standalone_master: str, tmp_path: Path
) -> None:
    result = _run_driver(standalone_master, tmp_path, "--gpus")
    assert result["n"] == 30
    assert result["gpus"] == ["['0']"]
    assert result["cuda_visible"] == ["0"]


def test_resources_give_each_trial_its_cores(standalone_master: str, tmp_path: Path) -> None:
    # Two workers of two cores; every task asks for two: never more than two trials at once,
    # although four workers were asked for, and every trial completes.
    result = _run_driver(standalone_master, tmp_path, "--resources")
    assert result["n"] == 12
    assert result["states"] == ["COMPLETE"]
    assert result["most_at_once"] == 2


def test_fractional_gpus_share_each_gpu_among_trials(
    standalone_master: str, tmp_path: Path
) -> None:
    # Two executors with one (pretend) GPU each; every trial asks for half a GPU: four
    # trials at once, each told its GPU's address.
    result = _run_driver(standalone_master, tmp_path, "--fractional-gpus")
    assert result["n"] == 16
    assert result["states"] == ["COMPLETE"]
    assert result["most_at_once"] == 4
    assert result["gpus"] == ["['0']"]
    assert len(result["executors"]) == 2


def test_trial_resources_run_each_trial_under_the_profile_its_parameters_call_for(
    standalone_master: str, tmp_path: Path
) -> None:
    # One stage per profile: the small trials on a core, the large ones on a whole executor
    # with its (pretend) GPU, each trial on a worker of the profile its "layers" chose.
    result = _run_driver(standalone_master, tmp_path, "--profiles")
    assert result["n"] == 16
    assert result["states"] == ["COMPLETE"]
    assert result["ran"] == [
        ["large", "large", "['0']", "0"],
        ["small", "small", "None", "None"],
    ]


def test_dynamic_allocation_scales_out_and_releases_the_executors(
    standalone_master: str, tmp_path: Path
) -> None:
    # From one executor of one core to four as Spark adds them while the workers' tasks
    # wait; after the study the tasks end and Spark releases the idle executors.
    result = _run_driver(standalone_master, tmp_path, "--dynamic")
    assert result["n"] == 60
    assert result["states"] == ["COMPLETE"]
    assert result["executors"] >= 3 and result["most_at_once"] >= 3
    assert result["executors_after"] == 1
