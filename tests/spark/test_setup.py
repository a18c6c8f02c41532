"""Spark set-up errors say what to install or set, in one sentence."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest

from optuna_spark import SparkExecutor
from optuna_spark import SparkSetupError
from optuna_spark._spark import _session as _spark


def test_missing_java_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkSetupError, match="Java 17") as info:
        _spark.embedded_session(1)
    assert "openjdk-17-jre-headless" in str(info.value)


def test_a_wrong_java_home_is_named_even_with_java_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"17.0.2\" 2022-01-18' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(SparkSetupError) as info:
        _spark.embedded_session(1)
    message = str(info.value)
    assert "JAVA_HOME is '/nonexistent', which has no bin/java" in message
    assert f"Unset JAVA_HOME to use the java on PATH ({fake})" in message


def test_old_java_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(SparkSetupError, match="is Java 11"):
        _spark.embedded_session(1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_workers": 0}, "n_workers must be a positive int"),
        ({"heartbeat_interval": 5.0, "heartbeat_grace": 2.0}, "heartbeat_grace must be longer"),
        ({"trial_timeout": -1.0}, "trial_timeout must be positive"),
        ({"stuck_grace": 0}, "stuck_grace must be positive"),
    ],
)
def test_bad_executor_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SparkExecutor(**kwargs)  # type: ignore[arg-type]


@pytest.mark.spark
def test_bad_optimize_arguments(executor: SparkExecutor) -> None:
    study = optuna.create_study()
    with pytest.raises(TypeError, match="catch argument"):
        executor.optimize(study, lambda t: 0.0, n_trials=1, catch=[ValueError])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_trials must be non-negative"):
        executor.optimize(study, lambda t: 0.0, n_trials=-1)
    with pytest.raises(ValueError, match="timeout must be positive"):
        executor.optimize(study, lambda t: 0.0, timeout=0)
    executor.optimize(study, lambda t: 0.0, n_trials=0)
    assert study.trials == []


class _FakeSession:
    def __init__(self, master: str) -> None:
        conf = {"spark.master": master}

        class _Conf:
            def get(self, key: str, default: str | None = None) -> str | None:
                return conf.get(key, default)

        class _Context:
            master = conf["spark.master"]

            def getConf(self) -> _Conf:
                return _Conf()

        self.sparkContext = _Context()


@pytest.mark.parametrize(
    ("master", "warns"),
    [
        ("local", True),
        ("local[4]", True),
        ("local[*]", True),
        ("local[4,4]", False),
        ("spark://127.0.0.1:7077", False),
    ],
)
def test_masters_without_task_retries_are_warned_about(master: str, warns: bool) -> None:
    from optuna_spark._spark._checks import warn_if_no_task_retries

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_no_task_retries(_FakeSession(master))  # type: ignore[arg-type]
    assert bool(caught) == warns
    if warns:
        assert "local[4,4]" in str(caught[0].message)


def test_spark_job_failures_are_summarized_to_their_cause() -> None:
    from optuna_spark._spark._job import spark_error_summary

    text = (
        "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collect.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage "
        "3.0 failed 4 times, most recent failure: Lost task 0.3: "
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "worker.py", line 1, in main\n'
        "ConnectionError: Could not connect to the optuna-spark server at 10.0.0.1:4242\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.read(PythonRunner.scala:1)\n"
    )
    summary = spark_error_summary(RuntimeError(text))
    assert summary.startswith("org.apache.spark.SparkException: Job aborted")
    assert summary.endswith(
        "ConnectionError: Could not connect to the optuna-spark server at 10.0.0.1:4242"
    )


def test_an_unreachable_storage_fails_before_spark_starts() -> None:
    import socket

    import optuna

    from optuna_spark import RemoteStorage
    from optuna_spark.remote import StudyServer

    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        storage = RemoteStorage(server.host, server.port, server.token, connect_timeout=1.0)
        study = optuna.create_study(storage=storage)
        endpoint = server.endpoint
    storage.close()
    # The server is gone now; nothing listens at its address.
    with socket.socket() as probe:
        assert probe.connect_ex((endpoint.host, endpoint.port)) != 0
    executor = SparkExecutor(n_workers=1)
    with pytest.raises(ConnectionError, match=endpoint.address):
        executor.optimize(study, lambda t: 0.0, n_trials=1)
    assert executor._spark is None  # no session was looked up or started
