"""The arms that a :class:`LOCOSampler`'s arguments ask for, checked and labelled."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np

from optuna_spark.ablation import _arms as a

#: What an arm leaves out: ``(kind, name, removes)``, ``removes`` being names or layer patterns.
ArmSpec = tuple[str, str, tuple[str, ...]]


def arm_specs(
    *,
    features: Sequence[str],
    layers: Sequence[str],
    layer_groups: Mapping[str, str | Sequence[str]] | None,
    components: Sequence[str],
    include_base: bool,
) -> dict[str, ArmSpec]:
    """Every arm, by label, in hand-out order: the base (if included), then one arm per name.

    Args:
        features: Input features to leave out, one arm each.
        layers: Names of Keras layers to leave out, one arm each.
        layer_groups: Groups of layers left out together, as given to :class:`LOCOSampler`.
        components: Other named components to leave out, one arm each.
        include_base: Whether the base arm (nothing left out) comes first.

    Returns:
        A mapping from each arm's label (``"base"``, ``"feature:area"``, ...) to its spec.

    Raises:
        TypeError: If an argument is of the wrong type (a string instead of a list of names).
        ValueError: If there is nothing to leave out, or a name is empty or given twice.
    """
    specs: list[ArmSpec] = []
    specs += [(a.KIND_FEATURE, n, (n,)) for n in _names("features", features)]
    specs += [(a.KIND_LAYER, n, (n,)) for n in _names("layers", layers)]
    specs += [(a.KIND_GROUP, n, p) for n, p in _groups(layer_groups).items()]
    specs += [(a.KIND_COMPONENT, n, (n,)) for n in _names("components", components)]
    if not specs:
        raise ValueError(
            "LOCOSampler needs at least one feature, layer, layer group or component to leave out."
        )
    seen: dict[str, str] = {}
    for kind, name, _ in specs:
        if name in seen:
            raise ValueError(
                f"{name!r} is ablated twice, as a {seen[name]} and as a {kind}; names must "
                "be unique across features, layers, layer groups and components."
            )
        seen[name] = kind
    if include_base:
        specs.insert(0, (a.KIND_BASE, a.BASE, ()))
    return {a.arm_label(kind, name): (kind, name, removes) for kind, name, removes in specs}


def check_repeats_and_seed(n_repeats: int, seed: int | None) -> tuple[int, int | None]:
    """``n_repeats`` and ``seed`` as plain ints, once checked.

    Raises:
        TypeError: If ``n_repeats`` is not an int, or ``seed`` neither an int nor ``None``.
        ValueError: If ``n_repeats`` is less than 1.
    """
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, (int, np.integer)):
        raise TypeError(f"n_repeats must be an int, but got {n_repeats=}.")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1, but got {n_repeats=}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, but got {seed=}.")
    return int(n_repeats), None if seed is None else int(seed)


def _names(arg: str, names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError(
            f"{arg} must be a sequence of names, not a string; did you mean {arg}=[{names!r}]?"
        )
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{arg} must hold non-empty strings, but got {name!r}.")
        if name in out:
            raise ValueError(f"{arg} lists {name!r} twice.")
        out.append(name)
    return tuple(out)


def _groups(layer_groups: Mapping[str, str | Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if layer_groups is None:
        return {}
    if not isinstance(layer_groups, Mapping):
        raise TypeError(
            "layer_groups must map a group's name to its layer names (or to a name prefix), "
            f"but got {type(layer_groups).__name__}."
        )
    out: dict[str, tuple[str, ...]] = {}
    for name, members in layer_groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"A layer group's name must be a non-empty string, but got {name!r}.")
        if isinstance(members, str):
            if not members:
                raise ValueError(f"Layer group {name!r} has an empty prefix.")
            patterns: tuple[str, ...] = (members if members.endswith("*") else members + "*",)
        else:
            patterns = _names(f"layer_groups[{name!r}]", members)
            if not patterns:
                raise ValueError(f"Layer group {name!r} has no layers.")
        out[name] = patterns
    return out
