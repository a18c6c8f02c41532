"""PyTorch data without a feature: a tensor's slices, a dataset's items (for ``drop_features``)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from optuna_spark.ablation._data import _as_names
from optuna_spark.ablation._data import _check_known
from optuna_spark.ablation._data import _without
from optuna_spark.ablation._torch import import_torch


def drop_from_tensor(
    tensor: Any, drop: Sequence[str], feature_names: Sequence[str] | None, feature_axis: int
) -> Any:
    """``tensor`` without the slices of ``drop`` along ``feature_axis``, named by
    ``feature_names`` (for :func:`drop_features`)."""
    if feature_names is None:
        raise ValueError(
            "drop_features needs feature_names=[...] (the name of each slice along "
            "feature_axis, the last axis by default) to leave a feature out of a torch.Tensor."
        )
    names = list(_as_names("feature_names", feature_names))
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"feature_names must be distinct, but {twice} appear more than once.")
    if not -tensor.dim() <= feature_axis < tensor.dim():
        raise ValueError(
            f"feature_axis {feature_axis} is not an axis of a tensor of shape "
            f"{tuple(tensor.shape)}."
        )
    if tensor.shape[feature_axis] != len(names):
        raise ValueError(
            f"The tensor has {tensor.shape[feature_axis]} features along axis {feature_axis} "
            f"(shape {tuple(tensor.shape)}), but feature_names has {len(names)}: {names}."
        )
    _check_known(drop, names, "tensor's features")
    if not drop:
        return tensor
    torch = import_torch()
    keep = [i for i, name in enumerate(names) if name not in drop]
    return tensor.index_select(feature_axis, torch.tensor(keep, device=tensor.device))


def drop_from_dataset(dataset: Any, drop: Sequence[str]) -> Any:
    """``dataset`` without ``drop`` in each item (for :func:`drop_features`).

    A map-style dataset's first item is checked at once; an iterable dataset's items are
    checked as they come.
    """
    torch = import_torch()
    if not isinstance(dataset, torch.utils.data.IterableDataset):
        first = _first_item(dataset)
        if first is not None:
            _drop_from_item(first[0], drop)
    if not drop:
        return dataset
    return _without_features(dataset, tuple(drop))


def _first_item(dataset: Any) -> tuple[Any] | None:
    """``(dataset[0],)``, or ``None`` for a dataset that is empty, has no length or whose
    keys are not positions."""
    try:
        if len(dataset) == 0:
            return None
    except TypeError:
        return None
    try:
        return (dataset[0],)
    except LookupError:
        return None


def _drop_from_item(item: Any, drop: Sequence[str]) -> Any:
    if isinstance(item, Mapping):
        _check_known(drop, [str(k) for k in item], "dataset's features")
        return _without(dict(item), drop)
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], Mapping):
        features = _drop_from_item(item[0], drop)
        if isinstance(item, list):
            return [features, *item[1:]]
        if hasattr(item, "_fields"):  # a namedtuple
            return type(item)(features, *item[1:])
        return (features, *item[1:])
    raise TypeError(
        "A torch Dataset must yield a dict of features, or a tuple whose first item is a dict "
        f"of features (features, label), to leave a feature out; it yields {type(item).__name__}."
    )


def _without_features(dataset: Any, drop: tuple[str, ...]) -> Any:
    """A dataset whose items are ``dataset``'s without ``drop`` (picklable: it pickles as a
    call of this function, so its classes can be made only once PyTorch is imported)."""
    map_style, iterable = _dataset_classes()
    torch = import_torch()
    cls = iterable if isinstance(dataset, torch.utils.data.IterableDataset) else map_style
    return cls(dataset, drop)


@functools.cache
def _dataset_classes() -> tuple[type[Any], type[Any]]:
    import_torch()
    from torch.utils.data import Dataset
    from torch.utils.data import IterableDataset

    class WithoutFeatures(Dataset[Any]):
        """The items of ``dataset`` without the features ``drop``."""

        def __init__(self, dataset: Any, drop: tuple[str, ...]) -> None:
            self.dataset = dataset
            self.drop = drop

        def __getitem__(self, index: Any) -> Any:
            return _drop_from_item(self.dataset[index], self.drop)

        def __len__(self) -> int:
            return len(self.dataset)

        def __reduce__(self) -> tuple[Any, ...]:
            return (_without_features, (self.dataset, self.drop))

        def __repr__(self) -> str:
            return f"{type(self).__name__}({self.dataset!r}, drop={list(self.drop)})"

    class IterableWithoutFeatures(IterableDataset[Any]):
        """The items of the iterable ``dataset`` without the features ``drop``."""

        def __init__(self, dataset: Any, drop: tuple[str, ...]) -> None:
            self.dataset = dataset
            self.drop = drop

        def __iter__(self) -> Iterator[Any]:
            return (_drop_from_item(item, self.drop) for item in self.dataset)

        def __len__(self) -> int:
            return len(self.dataset)  # a TypeError when the dataset has no length

        def __reduce__(self) -> tuple[Any, ...]:
            return (_without_features, (self.dataset, self.drop))

        def __repr__(self) -> str:
            return f"{type(self).__name__}({self.dataset!r}, drop={list(self.drop)})"

    return WithoutFeatures, IterableWithoutFeatures
