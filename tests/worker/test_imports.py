"""A Spark executor loads the worker side only: never the coordinator (the driver's service)."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
import optuna_spark._worker._spark_task as entry
import optuna_spark
optuna_spark.RemoteStorage  # the name a worker uses
from optuna_spark._worker import RemoteTrial  # what its objective gets
print(json.dumps(sorted(m for m in sys.modules if m.startswith("optuna_spark"))))
"""


def test_the_workers_entry_point_does_not_import_the_coordinator() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(out.stdout)
    assert "optuna_spark._worker._spark_task" in modules
    assert "optuna_spark._coordinator._run" not in modules
    loaded = [
        m for m in modules if m.startswith(("optuna_spark._coordinator", "optuna_spark._spark"))
    ]
    assert loaded == [], f"a worker imported the driver's side: {loaded}"


_CLUSTER_PROBE = """
import json, sys
import optuna_spark._spark._cluster_task as entry
print(json.dumps(sorted(m for m in sys.modules if m.startswith("optuna_spark"))))
"""


def test_the_cluster_placements_worker_tasks_do_not_import_the_coordinator() -> None:
    # With coordinator="cluster" every task of the job loads the cluster task's module; only
    # task 0 serves the run, and imports the coordinator inside its own function.
    out = subprocess.run(
        [sys.executable, "-c", _CLUSTER_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = json.loads(out.stdout)
    assert "optuna_spark._spark._cluster_task" in modules
    loaded = [
        m
        for m in modules
        if m.startswith("optuna_spark._coordinator")
        or (m.startswith("optuna_spark._spark.") and m != "optuna_spark._spark._cluster_task")
    ]
    assert loaded == [], f"a cluster worker task imported the driver's side: {loaded}"
