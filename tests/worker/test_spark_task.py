"""What a Spark task sets up for the objective before the worker loop starts."""

from __future__ import annotations

import os

import pytest

from optuna_spark._worker._spark_task import task_info


def test_tensorflow_logging_is_lowered_unless_the_user_set_a_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    task_info()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's choice is kept
    task_info()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
