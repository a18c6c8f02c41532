from __future__ import annotations

import pytest

from optuna_spark import SparkExecutor


@pytest.fixture
def executor(spark: object) -> SparkExecutor:
    return SparkExecutor(spark, n_workers=2)  # type: ignore[arg-type]
