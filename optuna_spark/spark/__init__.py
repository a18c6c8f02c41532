"""The Spark side: ``SparkExecutor``, its session, its job and its progress bar."""

from optuna_spark.spark._executor import SparkExecutor

__all__ = ["SparkExecutor"]
