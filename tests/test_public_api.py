"""The public names: every one importable, the former server name kept, imports lazy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna_spark


def test_every_public_name_imports() -> None:
    import optuna_spark.remote

    for module in (optuna_spark, optuna_spark.remote):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
        assert set(module.__all__) <= set(dir(module))


def test_the_top_level_is_what_spark_users_need() -> None:
    assert set(optuna_spark.__all__) == {
        "SparkExecutor",
        "LOCOSampler",
        "RemoteStorage",
        "get_trial_log",
        "OptunaSparkError",
        "SparkSetupError",
        "AuthenticationError",
        "ProtocolError",
        "MessageTooLargeError",
        "RemoteError",
    }
    # Every exported exception is one of the package's own, documented in README.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in optuna_spark.__all__:
        assert f"`{name}" in readme, name
    # The names code written against earlier versions imports still resolve.
    from optuna_spark import StudyRun
    from optuna_spark import run_worker
    from optuna_spark.remote import StudyRun as Remote
    from optuna_spark.remote import run_worker as remote_run_worker

    assert StudyRun is Remote and run_worker is remote_run_worker


def test_the_former_server_name_is_the_same_class() -> None:
    from optuna_spark import StorageServer
    from optuna_spark import StudyServer
    from optuna_spark.storages import StorageServer as FromStorages

    assert StorageServer is StudyServer is FromStorages


def test_importing_the_package_loads_neither_spark_nor_the_coordinator() -> None:
    probe = (
        "import json, sys, optuna_spark; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('pyspark', 'optuna_spark.coordinator', 'optuna_spark.spark')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []
