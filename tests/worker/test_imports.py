"""A Spark executor loads the worker side only: never the coordinator (the driver's service)."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
import optuna_spark.worker._spark_task as entry
import optuna_spark
optuna_spark.RemoteTrial, optuna_spark.RemoteStorage  # the names a worker uses
print(json.dumps(sorted(m for m in sys.modules if m.startswith("optuna_spark"))))
"""


def test_the_workers_entry_point_does_not_import_the_coordinator() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(out.stdout)
    assert "optuna_spark.worker._spark_task" in modules
    assert "optuna_spark.coordinator._run" not in modules
    loaded = [
        m for m in modules if m.startswith(("optuna_spark.coordinator", "optuna_spark.spark"))
    ]
    assert loaded == [], f"a worker imported the driver's side: {loaded}"
