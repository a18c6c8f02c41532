"""Optional heavy imports, done when first needed, with an error that names the extra."""

from __future__ import annotations

import importlib
import sys
from typing import Any

_TENSORFLOW_EXTRA = "pip install 'optuna-spark[tensorflow]'"
_ABLATION_EXTRA = "pip install 'optuna-spark[ablation]'"


def import_ablation_dependency(name: str) -> Any:
    """``name`` (pandas, scipy.stats, plotly.graph_objects), or an ``ImportError`` naming the
    extra that installs it: reports and plots need them, the sampler does not."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"Ablation reports and plots need {name.split('.')[0]}; install it with "
            f"`{_ABLATION_EXTRA}`."
        ) from e


def import_keras() -> Any:
    """The ``keras`` (3.x) module, or an ``ImportError`` naming the extra to install."""
    try:
        keras = importlib.import_module("keras")
    except ImportError as e:
        raise ImportError(
            f"Keras model surgery needs Keras 3 and TensorFlow; install them with "
            f"`{_TENSORFLOW_EXTRA}`."
        ) from e
    if not str(getattr(keras, "__version__", "0")).startswith("3."):
        raise ImportError(
            f"Keras model surgery needs Keras 3, but Keras {keras.__version__} is installed; "
            f"install it with `{_TENSORFLOW_EXTRA}`."
        )
    return keras


def is_tf_dataset(data: Any) -> bool:
    """Whether ``data`` is a ``tf.data.Dataset`` (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def is_spark_dataframe(data: Any) -> bool:
    """Whether ``data`` is a Spark DataFrame, classic or Spark Connect (without importing it)."""
    module = type(data).__module__
    if not module.startswith("pyspark.sql"):
        return False
    from pyspark.sql import DataFrame  # the parent of classic and Spark Connect DataFrames

    return isinstance(data, DataFrame)


def is_pandas_dataframe(data: Any) -> bool:
    """Whether ``data`` is a pandas DataFrame (without importing pandas)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(data, pd.DataFrame)
