"""Data without a feature: DataFrames, ``tf.data`` and PyTorch datasets, tensors, a callback."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

from optuna.trial import BaseTrial

from optuna_spark.ablation import _imports
from optuna_spark.ablation._arms import Arm
from optuna_spark.ablation._arms import as_arm

T = TypeVar("T")


def drop_features(
    data: T,
    features: str | Sequence[str],
    *,
    label: str | Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    feature_axis: int = -1,
) -> T:
    """``data`` without ``features``: a DataFrame, a ``tf.data`` or PyTorch dataset, a tensor.

    Args:
        data: A pandas DataFrame, a Spark DataFrame (classic or Spark Connect), a
            ``tf.data.Dataset`` or a ``torch.utils.data.Dataset`` whose items are a dict of
            features or a tuple whose first item is a dict of features (``(features, label)``,
            ``(features, label, weight)``), or a ``torch.Tensor`` whose features are the slices
            along ``feature_axis``, named by ``feature_names``.
        features: The feature(s) to drop.
        label: The label column(s), which are never dropped (asking to is an error).
        feature_names: Only for a tensor: the name of each of its slices along
            ``feature_axis``, in order.
        feature_axis: Only for a tensor: its axis of features (the last by default).

    Returns:
        Data of the same kind without the features: a new DataFrame, a mapped ``tf.data``
        dataset, a PyTorch dataset that drops them from each item (it pickles, to be shipped
        to Spark workers, when ``data`` does), or a new tensor with the other slices in their
        order (:func:`features_to_keep` names them).

    Raises:
        ValueError: A feature is the label, or is not in the data (a PyTorch
            ``IterableDataset`` reports it when iterated); a tensor without ``feature_names``,
            or ``feature_names`` for other data.
        TypeError: ``data`` is none of the kinds above.

    Example:

        .. testcode::

            import pandas as pd
            from optuna_spark.ablation import drop_features

            df = pd.DataFrame({"area": [50.0, 80.0], "rooms": [2, 3], "price": [1.0, 2.0]})
            assert list(drop_features(df, "rooms", label="price").columns) == ["area", "price"]
    """
    from optuna_spark.ablation import _torch  # here: _torch uses this module's helpers
    from optuna_spark.ablation import _torch_data

    drop = _as_names("features", features)
    _check_not_label(drop, label)
    if _torch.is_tensor(data):
        return _torch_data.drop_from_tensor(data, drop, feature_names, feature_axis)  # type: ignore[no-any-return]
    if feature_names is not None or feature_axis != -1:
        raise ValueError(
            "feature_names and feature_axis name the features of a torch.Tensor; "
            f"{type(data).__qualname__} data names its own features."
        )
    return _drop_from(data, drop)


def _drop_from(data: T, drop: Sequence[str]) -> T:
    """``data`` (anything but a tensor) without the features ``drop``."""
    from optuna_spark.ablation import _torch
    from optuna_spark.ablation import _torch_data

    if _imports.is_pandas_dataframe(data):
        _check_known(drop, [str(c) for c in data.columns], "DataFrame columns")  # type: ignore[attr-defined]
        return data.drop(columns=list(drop))  # type: ignore[attr-defined, no-any-return]
    if _imports.is_spark_dataframe(data):
        _check_known(drop, list(data.columns), "Spark DataFrame columns")  # type: ignore[attr-defined]
        return data.drop(*drop)  # type: ignore[attr-defined, no-any-return]
    if _imports.is_tf_dataset(data):
        return _drop_from_tf_dataset(data, drop)  # type: ignore[no-any-return]
    if _torch.is_dataset(data):
        return _torch_data.drop_from_dataset(data, drop)  # type: ignore[no-any-return]
    raise TypeError(
        "Expected a pandas DataFrame, a Spark DataFrame, a tf.data.Dataset, a torch Dataset or "
        f"a torch.Tensor, but got {type(data).__module__}.{type(data).__qualname__}. For any "
        "other data, pass a function that makes it from the features to keep (see ablate_data)."
    )


def features_to_keep(
    trial_or_arm: BaseTrial | Arm,
    features: Sequence[str],
    *,
    label: str | Sequence[str] | None = None,
) -> list[str]:
    """``features`` without the features this trial's arm leaves out (if any).

    Args:
        trial_or_arm: The objective's trial, or its :class:`Arm`.
        features: Every feature of the base configuration, in order.
        label: The label(s), which an arm may not leave out.

    Raises:
        ValueError: The arm leaves out the label, or a feature that is not in ``features``.
    """
    arm = as_arm(trial_or_arm)
    names = list(_as_names("features", features))
    if not arm.features:
        return names
    _check_not_label(arm.features, label)
    _check_known(arm.features, names, "features")
    return [f for f in names if f not in arm.features]


def ablate_data(
    trial_or_arm: BaseTrial | Arm,
    data: Any,
    *,
    label: str | Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    feature_axis: int = -1,
) -> Any:
    """The data of this trial's arm: ``data`` without the features the arm leaves out, if any.

    Args:
        trial_or_arm: The objective's trial, or its :class:`Arm` from :func:`get_arm`.
        data: A pandas DataFrame, a Spark DataFrame, a ``tf.data.Dataset`` of dict features
            (see :func:`drop_features`), or a function ``make(features_to_keep) -> data`` that
            builds the data from a list of feature names (then ``features`` is required).
        label: The label column(s), which are never left out.
        features: Every feature of the base configuration; only for a function ``data``.
        feature_names: For a ``torch.Tensor``: the name of each slice along ``feature_axis``
            (see :func:`drop_features`).
        feature_axis: For a ``torch.Tensor``: the axis of the features.

    Returns:
        ``data`` itself when the arm keeps every feature; otherwise the data without the
        feature, or what ``data(features_to_keep)`` returns.

    Raises:
        ValueError: The arm leaves out the label, or a feature that is not in the data.

    Example:

        .. testcode::

            import pandas as pd
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import ablate_data

            df = pd.DataFrame({"area": [50.0, 80.0], "rooms": [2, 3], "price": [1.0, 2.0]})
            trial = LOCOSampler(features=["area", "rooms"]).fixed_trial("feature:area")
            assert list(ablate_data(trial, df, label="price").columns) == ["rooms", "price"]
    """
    arm = as_arm(trial_or_arm)
    if _names_its_features(data):
        if features is not None:
            raise ValueError("features is only for a function that makes the data.")
        return drop_features(data, arm.features, label=label) if arm.features else data
    if callable(data):
        if features is None:
            raise ValueError(
                "ablate_data needs features=[...] (every feature of the base configuration) "
                "when data is a function that makes the data from the features to keep."
            )
        make: Callable[[list[str]], Any] = data
        return make(features_to_keep(arm, features, label=label))
    axis = feature_axis if feature_names is not None else -1  # a tensor's named features
    return drop_features(
        data, arm.features, label=label, feature_names=feature_names, feature_axis=axis
    )


def _names_its_features(data: Any) -> bool:
    """Whether ``data`` is a DataFrame or a ``tf.data`` dataset, which name their features."""
    return (
        _imports.is_pandas_dataframe(data)
        or _imports.is_spark_dataframe(data)
        or _imports.is_tf_dataset(data)
    )


def _as_names(arg: str, names: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        return (names,)
    out = tuple(names)
    for name in out:
        if not isinstance(name, str):
            raise TypeError(f"{arg} must be names (strings), but got {name!r}.")
    return out


def _check_not_label(drop: Sequence[str], label: str | Sequence[str] | None) -> None:
    labels = _as_names("label", label) if label is not None else ()
    for feature in drop:
        if feature in labels:
            raise ValueError(f"Cannot leave out {feature!r}: it is the label, not a feature.")


def _check_known(drop: Sequence[str], available: Sequence[str], where: str) -> None:
    for feature in drop:
        if feature not in available:
            raise ValueError(
                f"Cannot leave out feature {feature!r}: it is not one of the {where} "
                f"{list(available)}."
            )


def _drop_from_tf_dataset(dataset: Any, drop: Sequence[str]) -> Any:
    spec = dataset.element_spec
    if isinstance(spec, dict):
        _check_known(drop, [str(k) for k in spec], "dataset's features")
        if not drop:
            return dataset
        return dataset.map(lambda features: _without(features, drop))
    if isinstance(spec, tuple) and spec and isinstance(spec[0], dict):
        _check_known(drop, [str(k) for k in spec[0]], "dataset's features")
        if not drop:
            return dataset
        return dataset.map(lambda features, *rest: (_without(features, drop), *rest))
    raise TypeError(
        "A tf.data.Dataset must yield a dict of features, or a tuple whose first item is a dict "
        f"of features (features, label), to leave a feature out; its element_spec is {spec}."
    )


def _without(features: dict[str, Any], drop: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in features.items() if k not in drop}
