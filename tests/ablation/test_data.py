"""Data without the left-out feature: pandas, Spark, tf.data and a user callback."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from optuna_spark.ablation import Arm
from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablate_data
from optuna_spark.ablation import drop_features
from optuna_spark.ablation import features_to_keep
from optuna_spark.ablation import get_arm

FEATURES = ["floors", "area", "rooms", "noise"]
SAMPLER = LOCOSampler(features=FEATURES, components=["augment"])


def _arm(label: str) -> Arm:
    return get_arm(SAMPLER.fixed_trial(label))


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f: rng.normal(size=6) for f in FEATURES})
    df["price"] = rng.normal(size=6)
    return df


# ---------------------------------------------------------------------------------------------
# pandas and the callback (no extra needed).


def test_pandas_without_the_feature() -> None:
    df = _frame()
    out = ablate_data(SAMPLER.fixed_trial("feature:area"), df, label="price")
    assert list(out.columns) == ["floors", "rooms", "noise", "price"]
    pd.testing.assert_frame_equal(out, df.drop(columns=["area"]))
    assert list(df.columns) == [*FEATURES, "price"]  # the input is untouched


@pytest.mark.parametrize("label", ["base", "component:augment"])
def test_arms_without_a_feature_keep_the_data(label: str) -> None:
    df = _frame()
    assert ablate_data(_arm(label), df, label="price") is df


def test_the_label_cannot_be_left_out() -> None:
    sampler = LOCOSampler(features=["price", "area"])
    with pytest.raises(ValueError, match="Cannot leave out 'price': it is the label"):
        ablate_data(sampler.fixed_trial("feature:price"), _frame(), label="price")
    with pytest.raises(ValueError, match="it is the label"):
        drop_features(_frame(), ["area", "price"], label=["price"])


def test_an_unknown_feature_is_an_error() -> None:
    sampler = LOCOSampler(features=["garden"])
    with pytest.raises(ValueError, match=r"'garden': it is not one of the DataFrame columns"):
        ablate_data(sampler.fixed_trial("feature:garden"), _frame(), label="price")


def test_callback_receives_the_features_to_keep() -> None:
    seen: list[list[str]] = []

    def make(features: list[str]) -> str:
        seen.append(features)
        return "data"

    assert ablate_data(_arm("feature:rooms"), make, features=FEATURES, label="price") == "data"
    assert ablate_data(_arm("base"), make, features=FEATURES) == "data"
    assert seen == [["floors", "area", "noise"], FEATURES]
    assert features_to_keep(_arm("feature:floors"), FEATURES) == ["area", "rooms", "noise"]


def test_callback_errors() -> None:
    with pytest.raises(ValueError, match="needs features="):
        ablate_data(_arm("feature:rooms"), lambda features: features)
    with pytest.raises(ValueError, match="'rooms': it is not one of the features"):
        ablate_data(_arm("feature:rooms"), lambda f: f, features=["area"])
    with pytest.raises(ValueError, match="it is the label"):
        features_to_keep(_arm("feature:rooms"), FEATURES, label="rooms")


def test_other_data_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="pass a function that makes it"):
        ablate_data(_arm("feature:rooms"), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="Expected a pandas DataFrame"):
        drop_features([1, 2], "a")


# ---------------------------------------------------------------------------------------------
# tf.data


@pytest.mark.tensorflow
def test_tf_dataset_of_feature_dicts_and_labels(keras: Any) -> None:
    import tensorflow as tf

    df = _frame()
    features = {f: df[f].to_numpy() for f in FEATURES}
    labelled = tf.data.Dataset.from_tensor_slices((features, df["price"].to_numpy())).batch(3)
    out = ablate_data(_arm("feature:noise"), labelled, label="price")
    x, y = next(iter(out))
    assert sorted(x) == ["area", "floors", "rooms"]
    np.testing.assert_allclose(y.numpy(), df["price"].to_numpy()[:3])
    assert ablate_data(_arm("base"), labelled) is labelled

    weighted = tf.data.Dataset.from_tensor_slices((features, df["price"].to_numpy(), np.ones(6)))
    x, _, w = next(iter(ablate_data(_arm("feature:area"), weighted)))
    assert sorted(x) == ["floors", "noise", "rooms"] and float(w) == 1.0

    # Features and label in one dict.
    flat = tf.data.Dataset.from_tensor_slices({**features, "price": df["price"].to_numpy()})
    element = next(iter(ablate_data(_arm("feature:floors"), flat, label="price")))
    assert sorted(element) == ["area", "noise", "price", "rooms"]


@pytest.mark.tensorflow
def test_tf_dataset_errors(keras: Any) -> None:
    import tensorflow as tf

    df = _frame()
    flat = tf.data.Dataset.from_tensor_slices({c: df[c].to_numpy() for c in df.columns})
    with pytest.raises(ValueError, match="it is the label"):
        drop_features(flat, "price", label="price")
    with pytest.raises(ValueError, match="'garden': it is not one of the dataset's features"):
        drop_features(flat, "garden")
    tensors = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2)))
    with pytest.raises(TypeError, match="must yield a dict of features"):
        drop_features(tensors, "area")


# ---------------------------------------------------------------------------------------------
# Spark


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_spark_dataframe_without_the_feature(spark: Any) -> None:
    frame = _frame()
    rows = [tuple(float(v) for v in row) for row in frame.itertuples(index=False)]
    df = spark.createDataFrame(rows, list(frame.columns))
    out = ablate_data(_arm("feature:area"), df, label="price")
    assert out.columns == ["floors", "rooms", "noise", "price"]
    assert out.count() == 6
    assert ablate_data(_arm("base"), df, label="price") is df
    with pytest.raises(ValueError, match="it is the label"):
        drop_features(df, "price", label="price")
    with pytest.raises(ValueError, match="'garden': it is not one of the Spark DataFrame columns"):
        drop_features(df, "garden")


def test_a_missing_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from optuna_spark.ablation import ablate_model

    monkeypatch.setitem(sys.modules, "keras", None)  # import keras raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'optuna-spark\[tensorflow\]'"):
        ablate_model(_arm("base"), lambda: None)
