from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from optuna_spark import SparkExecutor


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One embedded local Spark session (4 slots, task retries on) for the whole test run."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[4,4]")
        .appName("optuna-spark-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def executor(spark: object) -> SparkExecutor:
    return SparkExecutor(spark, n_workers=2)  # type: ignore[arg-type]
