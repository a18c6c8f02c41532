"""What an ablation can leave out (its components), and what one arm leaves out (ArmSpec)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from optuna_spark.ablation import _arms as a


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    """One arm of an ablation: a label and the components it leaves out.

    An :class:`~optuna_spark.ablation.AblationPolicy` returns these; the sampler runs each one
    ``n_repeats`` times with paired seeds.

    Attributes:
        label: The arm's unique name, shown in reports, plots and the ``loco_arm`` user
            attribute: ``"base"`` (nothing left out) or any other non-empty string.
        left_out: The components (features, layers, layer groups, named components of the
            policy) that the arm leaves out; empty only for the base.
        kind: What kind of arm it is (``"feature"``, ``"pair"``, ``"custom"``, ...); reports
            group and explain arms by it.
        params: For arms that are configurations rather than removals (the ablation path),
            the value of every parameter the objective suggests; otherwise ``None``.

    Example:

        .. testcode::

            from optuna_spark.ablation import ArmSpec

            arm = ArmSpec("no-regularization", left_out=("dropout", "weight_decay"))
            assert arm.kind == "custom" and "dropout" in arm.left_out
    """

    label: str
    left_out: tuple[str, ...] = ()
    kind: str = "custom"
    params: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"An arm's label must be a non-empty string, but got {self.label!r}.")
        if isinstance(self.left_out, str):
            raise TypeError(
                f"left_out must be a sequence of component names, not a string; did you mean "
                f"left_out=({self.left_out!r},)?"
            )
        object.__setattr__(self, "left_out", tuple(self.left_out))
        if self.label == a.BASE and self.left_out:
            raise ValueError(
                f"The arm labelled 'base' leaves nothing out, but got {self.left_out}."
            )


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The components an ablation can leave out: each name's kind and what leaving it out removes.

    Attributes:
        kinds: Each component's kind (``"feature"``, ``"layer"``, ``"group"``, ``"component"``
            or ``"param"``), in the order given.
        removes: What leaving each component out removes: its own name, or a layer group's
            layer names and ``"prefix*"`` patterns.
    """

    kinds: Mapping[str, str]
    removes: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(
        cls,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
        params: Sequence[str] = (),
    ) -> Catalog:
        """The catalog of these names, checked: unique across kinds, non-empty.

        Raises:
            TypeError: An argument is of the wrong type (a string instead of a list of names).
            ValueError: A name is empty or given twice.
        """
        entries: list[tuple[str, str, tuple[str, ...]]] = []
        entries += [(a.KIND_FEATURE, n, (n,)) for n in _names("features", features)]
        entries += [(a.KIND_LAYER, n, (n,)) for n in _names("layers", layers)]
        entries += [(a.KIND_GROUP, n, p) for n, p in _groups(layer_groups).items()]
        entries += [(a.KIND_COMPONENT, n, (n,)) for n in _names("components", components)]
        entries += [(a.KIND_PARAM, n, (n,)) for n in _names("params", params)]
        kinds: dict[str, str] = {}
        removes: dict[str, tuple[str, ...]] = {}
        for kind, name, patterns in entries:
            if name in kinds:
                raise ValueError(
                    f"{name!r} is ablated twice, as a {kinds[name]} and as a {kind}; names must "
                    "be unique across features, layers, layer groups and components."
                )
            kinds[name], removes[name] = kind, patterns
        return cls(kinds, removes)

    @property
    def names(self) -> tuple[str, ...]:
        """Every component's name, in order."""
        return tuple(self.kinds)

    def check(self, arm: ArmSpec) -> None:
        """Raise ``ValueError`` if ``arm`` leaves out a name that is not a component."""
        unknown = [n for n in arm.left_out if n not in self.kinds]
        if unknown:
            raise ValueError(
                f"Arm {arm.label!r} leaves out {unknown}, which are not components of this "
                f"ablation; its components are {list(self.kinds)}."
            )

    def record(self, arm: ArmSpec) -> dict[str, Any]:
        """What a trial of ``arm`` records so that a worker can rebuild its :class:`Arm`."""
        of_kind = {
            k: [n for n in arm.left_out if self.kinds[n] == k] for k in set(self.kinds.values())
        }
        layers = [
            p for n in arm.left_out if self.kinds[n] in a.LAYER_KINDS for p in self.removes[n]
        ]
        return {
            a.ATTR_LEFT_OUT: list(arm.left_out),
            a.ATTR_REMOVES: [p for n in arm.left_out for p in self.removes[n]],
            a.ATTR_FEATURES: of_kind.get(a.KIND_FEATURE, []),
            a.ATTR_LAYERS: layers,
            a.ATTR_COMPONENTS: list(self.kinds),
        }


def loco_arms(catalog: Catalog, *, include_base: bool) -> list[ArmSpec]:
    """The base (if included) and one arm per component, each leaving that component out."""
    arms = [ArmSpec(a.BASE, (), a.KIND_BASE)] if include_base else []
    for name, kind in catalog.kinds.items():
        arms.append(ArmSpec(a.arm_label(kind, name), (name,), kind))
    return arms


def check_repeats(n_repeats: int | tuple[int, int]) -> tuple[int, int]:
    """``(min, max)`` repeats per arm from ``n_repeats`` (an int, or a ``(min, max)`` range).

    Raises:
        TypeError: ``n_repeats`` is neither an int nor a pair of ints.
        ValueError: A count is less than 1, or the range is empty.
    """
    if isinstance(n_repeats, list):
        n_repeats = tuple(n_repeats)
    if isinstance(n_repeats, tuple):
        if len(n_repeats) != 2 or not all(_is_int(n) for n in n_repeats):
            raise TypeError(
                f"n_repeats must be an int or a (min, max) pair of ints, but got {n_repeats=}."
            )
        low, high = (int(n) for n in n_repeats)
        if low < 2 or high <= low:
            raise ValueError(
                "An adaptive n_repeats=(min, max) needs 2 <= min < max (a paired test needs two "
                f"repeats), but got {n_repeats=}; use an int for a fixed number of repeats."
            )
        return low, high
    if not _is_int(n_repeats):
        raise TypeError(
            f"n_repeats must be an int or a (min, max) pair of ints, but got {n_repeats=}."
        )
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1, but got {n_repeats=}.")
    return int(n_repeats), int(n_repeats)


def check_seed(seed: int | None) -> int | None:
    """``seed`` as a plain int (or ``None``), once checked."""
    if seed is not None and not _is_int(seed):
        raise TypeError(f"seed must be an int or None, but got {seed=}.")
    return None if seed is None else int(seed)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


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
