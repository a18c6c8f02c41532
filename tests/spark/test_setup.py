"""Spark set-up errors say what to install or set, in one sentence."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optuna_spark import SparkExecutor
from optuna_spark import SparkSetupError
from optuna_spark import _spark


def test_missing_java_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkSetupError, match="Java 17") as info:
        _spark.embedded_session(1)
    assert "openjdk-17-jre-headless" in str(info.value)


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
