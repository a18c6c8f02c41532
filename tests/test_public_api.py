"""The public names: every one importable, the former server name kept, imports lazy."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna_spark


def test_every_public_name_imports() -> None:
    for name in optuna_spark.__all__:
        assert getattr(optuna_spark, name) is not None, name
    assert set(optuna_spark.__all__) <= set(dir(optuna_spark))


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
