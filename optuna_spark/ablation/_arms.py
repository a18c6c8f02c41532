"""Arms of a LOCO study: what one trial leaves out, as recorded on the trial.

The sampler writes the assignment into the trial's user attributes (so that it shows in
optuna-dashboard and ``trials_dataframe()``); the worker-side helpers read it back through the
public ``BaseTrial`` API only, so that they work with ``optuna.Trial``, a ``RemoteTrial`` on a
Spark worker, or a ``FrozenTrial`` made by :meth:`LOCOSampler.fixed_trial`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import BaseTrial

#: The kinds of arm, in the order the sampler lists them.
KIND_BASE = "base"
KIND_FEATURE = "feature"
KIND_LAYER = "layer"
KIND_GROUP = "group"
KIND_COMPONENT = "component"
KINDS = (KIND_BASE, KIND_FEATURE, KIND_LAYER, KIND_GROUP, KIND_COMPONENT)

#: The label of the arm that leaves nothing out.
BASE = "base"

#: Parameters suggested by :func:`get_arm` (so that the arm is one of the trial's params).
PARAM_ARM = "loco_arm"
PARAM_REPEAT = "loco_repeat"

#: User attributes written by the sampler on every trial it assigns.
ATTR_ARM = "loco_arm"  # the arm's label, e.g. "feature:area"
ATTR_KIND = "loco_kind"
ATTR_NAME = "loco_name"
ATTR_REMOVES = "loco_removes"  # what the arm leaves out: names, or layer patterns for a group
ATTR_REPEAT = "loco_repeat"
ATTR_SEED = "loco_seed"
ATTR_ARMS = "loco_arms"  # every arm's label: the choices of the "loco_arm" parameter
ATTR_N_REPEATS = "loco_n_repeats"
ATTR_DUPLICATE = "loco_duplicate"  # an (arm, repeat) enqueued again (a retry)
ATTR_SURPLUS = "loco_surplus"  # asked for when every (arm, repeat) was taken: pruned at once

#: System attributes: the sampler's own record of the assignment.
SYS_ARM = "loco:arm"
SYS_REPEAT = "loco:repeat"
SYS_SEED = "loco:seed"
SYS_SURPLUS = "loco:surplus"

SURPLUS_MESSAGE = (
    "Every (arm, repeat) of this LOCO study has been handed out; this trial runs nothing."
)


def arm_label(kind: str, name: str) -> str:
    """The label of an arm: ``"base"`` or ``"<kind>:<name>"`` (``"feature:area"``)."""
    return BASE if kind == KIND_BASE else f"{kind}:{name}"


def parse_label(label: str) -> tuple[str, str]:
    """``(kind, name)`` of an arm label written by :func:`arm_label`."""
    if label == BASE:
        return KIND_BASE, BASE
    kind, sep, name = label.partition(":")
    if not sep or kind not in KINDS[1:] or not name:
        raise ValueError(f"{label!r} is not the label of a LOCO arm.")
    return kind, name


def matches(pattern: str, layer_name: str) -> bool:
    """Whether a layer-group entry matches a layer: exact name, or ``"prefix*"``."""
    if pattern.endswith("*"):
        return layer_name.startswith(pattern[:-1])
    return layer_name == pattern


@dataclasses.dataclass(frozen=True)
class Arm:
    """The arm of a LOCO trial: which component it leaves out, in which repeat, with which seed.

    Attributes:
        kind: ``"base"`` (nothing left out), ``"feature"``, ``"layer"``, ``"group"`` (a group of
            layers) or ``"component"``.
        name: The left-out component's name (``"base"`` for the base arm).
        repeat: The repeat index, from 0 to ``n_repeats - 1``.
        seed: The seed of this repeat. Every arm of the same repeat has the same seed, so arms
            are paired: seed your model and data shuffling with it.
        removes: What the arm leaves out: ``(name,)``, the layer names or ``"prefix*"``
            patterns of a group, or ``()`` for the base.
        components: Every ablated name of the study (features, layers, groups, components), so
            that :meth:`is_enabled` can reject a misspelt name.
    """

    kind: str
    name: str
    repeat: int
    seed: int
    removes: tuple[str, ...] = ()
    components: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)

    @property
    def label(self) -> str:
        """The arm's label, as in the ``loco_arm`` parameter: ``"base"``, ``"layer:dense_2"``."""
        return arm_label(self.kind, self.name)

    @property
    def is_base(self) -> bool:
        """Whether this is the base arm (nothing left out)."""
        return self.kind == KIND_BASE

    @property
    def feature(self) -> str | None:
        """The left-out feature, or ``None`` when this arm keeps every feature."""
        return self.name if self.kind == KIND_FEATURE else None

    @property
    def layers(self) -> tuple[str, ...]:
        """The left-out layer names or ``"prefix*"`` patterns (empty unless a layer arm)."""
        return self.removes if self.kind in (KIND_LAYER, KIND_GROUP) else ()

    def is_enabled(self, component: str) -> bool:
        """Whether ``component`` is kept by this arm (``False`` only when it is left out).

        Args:
            component: The name of a feature, layer, layer group or component given to
                :class:`LOCOSampler` (a layer that is only part of a group is asked about by
                the group's name).

        Raises:
            ValueError: ``component`` is not one of the study's ablated names.
        """
        if self.components and component not in self.components:
            raise ValueError(
                f"{component!r} is not ablated in this study; its ablated names are "
                f"{sorted(self.components)}."
            )
        if self.is_base:
            return True
        if self.kind == KIND_GROUP and any(matches(p, component) for p in self.removes):
            return False  # a layer ablated on its own is also left out with its group
        return component != self.name


def user_attrs_for(
    kind: str,
    name: str,
    removes: Sequence[str],
    repeat: int,
    seed: int,
    arms: Sequence[str],
    n_repeats: int,
) -> dict[str, Any]:
    """The user attributes that record an assignment on a trial."""
    return {
        ATTR_ARM: arm_label(kind, name),
        ATTR_KIND: kind,
        ATTR_NAME: name,
        ATTR_REMOVES: list(removes),
        ATTR_REPEAT: repeat,
        ATTR_SEED: seed,
        ATTR_ARMS: list(arms),
        ATTR_N_REPEATS: n_repeats,
    }


def arm_from_attrs(attrs: Mapping[str, Any]) -> Arm:
    """The :class:`Arm` recorded in a trial's user attributes."""
    arms = [str(a) for a in attrs.get(ATTR_ARMS, ())]
    components = frozenset(parse_label(a)[1] for a in arms if a != BASE)
    return Arm(
        kind=str(attrs[ATTR_KIND]),
        name=str(attrs[ATTR_NAME]),
        repeat=int(attrs[ATTR_REPEAT]),
        seed=int(attrs[ATTR_SEED]),
        removes=tuple(str(r) for r in attrs.get(ATTR_REMOVES, ())),
        components=components,
    )


def get_arm(trial: BaseTrial) -> Arm:
    """The arm a :class:`LOCOSampler` assigned to ``trial``.

    It also suggests the ``loco_arm`` and ``loco_repeat`` parameters, so that the arm is one of
    the trial's params (and a column of ``trials_dataframe()``). Call it once per trial and pass
    the :class:`Arm` to the other helpers: on a Spark worker each call is a round trip to the
    driver.

    Args:
        trial: The objective's trial: an ``optuna.Trial``, a worker's ``RemoteTrial``, or a
            ``FrozenTrial`` from :meth:`LOCOSampler.fixed_trial`.

    Returns:
        The trial's :class:`Arm`.

    Raises:
        ValueError: The trial was not assigned by a :class:`LOCOSampler`.
        optuna.TrialPruned: There was nothing left to run when the trial was asked for (see
            :class:`LOCOSampler`); raising it from the objective ends the trial at once.

    Example:

        .. testcode::

            import optuna
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import get_arm


            def objective(trial):
                arm = get_arm(trial)
                return 1.0 if arm.is_enabled("augment") else 0.0


            sampler = LOCOSampler(components=["augment"], n_repeats=2, seed=0)
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective)
            assert len(study.trials) == 4
    """
    attrs = trial.user_attrs
    if attrs.get(ATTR_SURPLUS):
        raise optuna.TrialPruned(SURPLUS_MESSAGE)
    if ATTR_ARM not in attrs or ATTR_ARMS not in attrs:
        raise ValueError(
            f"Trial {trial.number} has no LOCO arm: its study's sampler must be "
            "optuna_spark.ablation.LOCOSampler (to run an objective by hand, use "
            "LOCOSampler.fixed_trial)."
        )
    arm = arm_from_attrs(attrs)
    label = trial.suggest_categorical(PARAM_ARM, [str(a) for a in attrs[ATTR_ARMS]])
    repeat = trial.suggest_int(PARAM_REPEAT, 0, max(int(attrs[ATTR_N_REPEATS]) - 1, 0))
    if label != arm.label or repeat != arm.repeat:
        raise ValueError(
            f"Trial {trial.number} has params {PARAM_ARM}={label!r}, {PARAM_REPEAT}={repeat} "
            f"but its LOCO assignment is {arm.label!r}, repeat {arm.repeat}."
        )
    return arm


def as_arm(trial_or_arm: BaseTrial | Arm) -> Arm:
    """``trial_or_arm`` if it is an :class:`Arm`, else :func:`get_arm` of it."""
    if isinstance(trial_or_arm, Arm):
        return trial_or_arm
    if isinstance(trial_or_arm, BaseTrial):
        return get_arm(trial_or_arm)
    raise TypeError(
        f"Expected an optuna trial or an Arm, but got {type(trial_or_arm).__name__}: "
        f"{trial_or_arm!r}."
    )


def is_enabled(trial_or_arm: BaseTrial | Arm, component: str) -> bool:
    """Whether ``component`` is kept in this trial's arm (``False`` only when left out).

    Args:
        trial_or_arm: The objective's trial, or its :class:`Arm` from :func:`get_arm` (cheaper
            on a Spark worker when asked more than once).
        component: The name of a feature, layer, layer group or component given to
            :class:`LOCOSampler`.

    Raises:
        ValueError: ``component`` is not ablated in this study (a misspelt name would
            otherwise silently keep the component in every arm).

    Example:

        .. testcode::

            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import is_enabled

            sampler = LOCOSampler(components=["augment", "dropout"])
            trial = sampler.fixed_trial("component:augment")
            assert not is_enabled(trial, "augment")
            assert is_enabled(trial, "dropout")
    """
    return as_arm(trial_or_arm).is_enabled(component)
