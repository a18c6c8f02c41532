"""The public names: every one importable, the moved ones pointing to their place, imports
lazy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
        "TrialResources",
        "LOCOSampler",
        "RemoteStorage",
        "get_trial_log",
        "OptunaSparkError",
        "SparkSetupError",
        "AuthenticationError",
        "ProtocolError",
        "MessageTooLargeError",
        "RemoteError",
        "CheckpointError",
        "StorageUnavailableError",
    }
    from optuna_spark import checkpoint  # a module of its own, as optuna.artifacts

    assert {"save", "load", "Checkpoint"} <= set(checkpoint.__all__)
    # Every exported exception is one of the package's own, documented in README.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in optuna_spark.__all__:
        assert f"`{name}" in readme, name


@pytest.mark.parametrize(
    "name", ["StudyServer", "StudyRun", "WorkerSpec", "run_worker", "RemoteTrial", "Endpoint"]
)
def test_a_name_that_lives_in_remote_says_where_it_is(name: str) -> None:
    import optuna_spark.remote

    with pytest.raises(AttributeError, match=f"from optuna_spark.remote import {name}"):
        getattr(optuna_spark, name)
    assert getattr(optuna_spark.remote, name) is not None
    assert not hasattr(optuna_spark, "StorageServer")


def test_importing_the_package_loads_neither_spark_nor_the_coordinator() -> None:
    probe = (
        "import json, sys, optuna_spark; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('pyspark', 'optuna_spark._coordinator', 'optuna_spark._spark')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []
