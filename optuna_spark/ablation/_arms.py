"""Arms of a LOCO study: what one trial leaves out, as recorded on the trial.

The sampler writes the assignment into the trial's user attributes (so that it shows in
optuna-dashboard and ``trials_dataframe()``); the worker-side helpers read it back through the
public ``BaseTrial`` API only, so that they work with ``optuna.Trial``, a ``RemoteTrial`` on a
Spark worker, or a ``FrozenTrial`` made by :meth:`LOCOSampler.fixed_trial`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import BaseTrial

#: The kinds of component, and of the arms that leave one out, in the order LOCO lists them.
KIND_BASE = "base"
KIND_FEATURE = "feature"
KIND_LAYER = "layer"
KIND_GROUP = "group"
KIND_COMPONENT = "component"
KINDS = (KIND_BASE, KIND_FEATURE, KIND_LAYER, KIND_GROUP, KIND_COMPONENT)
#: Kinds of components removed from a model by name or pattern.
LAYER_KINDS = (KIND_LAYER, KIND_GROUP)
#: A parameter of a tuned configuration (the ablation path's components).
KIND_PARAM = "param"
#: Kinds of arms beyond leave-one-out.
KIND_PAIR = "pair"  # leaves two components out
KIND_NONE = "none"  # leaves every component out (the reference of leave-one-in)
KIND_IN = "in"  # keeps one component only
KIND_PATH = "path"  # a configuration on the ablation path
KIND_CUSTOM = "custom"

#: The label of the arm that leaves nothing out.
BASE = "base"
#: The label of the arm that leaves every component out.
NONE = "none"

#: Parameters suggested by :func:`get_arm` (so that the arm is one of the trial's params).
PARAM_ARM = "loco_arm"
PARAM_REPEAT = "loco_repeat"

#: User attributes written by the sampler on every trial it assigns.
ATTR_ARM = "loco_arm"  # the arm's label, e.g. "feature:area"
ATTR_KIND = "loco_kind"
ATTR_NAME = "loco_name"
ATTR_REMOVES = "loco_removes"  # everything left out: names, and layer patterns of groups
ATTR_LEFT_OUT = "loco_left_out"  # the components left out
ATTR_FEATURES = "loco_features"  # the features left out
ATTR_LAYERS = "loco_layers"  # the layer names and patterns left out
ATTR_COMPONENTS = "loco_components"  # every component of the ablation
ATTR_PARAMS = "loco_params"  # a configuration arm's parameters (the ablation path)
ATTR_REPEAT = "loco_repeat"
ATTR_SEED = "loco_seed"
ATTR_ARMS = "loco_arms"  # every arm's label, when the policy knows them in advance
ATTR_N_REPEATS = "loco_n_repeats"  # the most repeats an arm may get
ATTR_REFERENCE = "loco_reference"  # the arm that the report compares the others with
ATTR_MODE = "loco_mode"  # "out": arms remove from the reference; "in": arms add to it
ATTR_ADAPTIVE = "loco_adaptive"  # [min, max] repeats, when repeats are adaptive
ATTR_DUPLICATE = "loco_duplicate"  # an (arm, repeat) enqueued again (a retry)
ATTR_SURPLUS = "loco_surplus"  # asked for when every (arm, repeat) was taken: pruned at once

#: System attributes: the sampler's own record of the assignment.
SYS_ARM = "loco:arm"
SYS_REPEAT = "loco:repeat"
SYS_SEED = "loco:seed"
SYS_SURPLUS = "loco:surplus"
SYS_PARAMS = "loco:params"
#: Study system attribute prefix: why an arm got no more repeats (adaptive repeats).
SYS_DECISION = "loco:decision:"
#: Study system attribute prefix: what an adaptive policy decided (``AblationHistory.memory``).
SYS_MEMORY = "loco:memory:"

SURPLUS_MESSAGE = (
    "Every (arm, repeat) of this ablation study has been handed out; this trial runs nothing."
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
    """The arm of an ablation trial: what it leaves out, in which repeat, with which seed.

    Attributes:
        kind: ``"base"`` (nothing left out), ``"feature"``, ``"layer"``, ``"group"`` (a group of
            layers), ``"component"``, ``"pair"`` (two components), ``"in"`` (every component
            but one), ``"none"`` (every component), ``"path"`` (a configuration of the
            ablation path) or ``"custom"`` (an arm of your own policy).
        name: The left-out component's name for a single-component arm, else the arm's label.
        repeat: The repeat index, from 0.
        seed: The seed of this repeat. Every arm of the same repeat has the same seed, so arms
            are paired: seed your model and data shuffling with it.
        removes: Everything the arm leaves out: component names, and the layer names or
            ``"prefix*"`` patterns of left-out groups (``()`` for the base).
        components: Every component of the study (features, layers, groups, components), so
            that :meth:`is_enabled` can reject a misspelt name.
        left_out: The components the arm leaves out.
        features: The features it leaves out.
        layers: The layer names and ``"prefix*"`` patterns it leaves out.
        params: For a configuration arm (the ablation path), its parameters; else ``None``.
        label: The arm's label, as in the ``loco_arm`` user attribute.
    """

    kind: str
    name: str
    repeat: int
    seed: int
    removes: tuple[str, ...] = ()
    components: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)
    left_out: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    params: Mapping[str, Any] | None = dataclasses.field(default=None, repr=False)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", arm_label(self.kind, self.name))

    @property
    def is_base(self) -> bool:
        """Whether this is the base arm (nothing left out)."""
        return self.kind == KIND_BASE

    @property
    def feature(self) -> str | None:
        """The left-out feature, or ``None`` when this arm keeps every feature.

        Raises:
            ValueError: The arm leaves out several features (use :attr:`features`).
        """
        if len(self.features) > 1:
            raise ValueError(
                f"Arm {self.label!r} leaves out the features {list(self.features)}; read "
                "arm.features (or use ablate_data / features_to_keep)."
            )
        return self.features[0] if self.features else None

    def is_enabled(self, component: str) -> bool:
        """Whether ``component`` is kept by this arm (``False`` when it is left out).

        Args:
            component: The name of a feature, layer, layer group or component of the study (a
                layer that is only part of a group is asked about by the group's name).

        Raises:
            ValueError: ``component`` is not one of the study's ablated names.
        """
        if self.components and component not in self.components:
            raise ValueError(
                f"{component!r} is not ablated in this study; its ablated names are "
                f"{sorted(self.components)}."
            )
        if component in self.left_out:
            return False
        # A layer ablated on its own is also left out with a group that contains it.
        return not any(matches(p, component) for p in self.layers)


def arm_from_attrs(attrs: Mapping[str, Any]) -> Arm:
    """The :class:`Arm` recorded in a trial's user attributes."""
    kind, label = str(attrs[ATTR_KIND]), str(attrs[ATTR_ARM])
    if ATTR_COMPONENTS in attrs:
        components = frozenset(str(c) for c in attrs[ATTR_COMPONENTS])
        left_out = tuple(str(c) for c in attrs.get(ATTR_LEFT_OUT, ()))
        features = tuple(str(f) for f in attrs.get(ATTR_FEATURES, ()))
        layers = tuple(str(p) for p in attrs.get(ATTR_LAYERS, ()))
    else:  # recorded by an earlier version: one component left out, named by the label
        arms = [str(x) for x in attrs.get(ATTR_ARMS, ())]
        components = frozenset(parse_label(x)[1] for x in arms if x != BASE)
        name = str(attrs[ATTR_NAME])
        left_out = () if kind == KIND_BASE else (name,)
        features = left_out if kind == KIND_FEATURE else ()
        layers = tuple(str(r) for r in attrs.get(ATTR_REMOVES, ())) if kind in LAYER_KINDS else ()
    params = attrs.get(ATTR_PARAMS)
    return Arm(
        kind=kind,
        name=str(attrs[ATTR_NAME]),
        repeat=int(attrs[ATTR_REPEAT]),
        seed=int(attrs[ATTR_SEED]),
        removes=tuple(str(r) for r in attrs.get(ATTR_REMOVES, ())),
        components=components,
        left_out=left_out,
        features=features,
        layers=layers,
        params=dict(params) if params is not None else None,
        label=label,
    )


def get_arm(trial: BaseTrial) -> Arm:
    """The arm a :class:`LOCOSampler` (or any :class:`AblationSampler`) assigned to ``trial``.

    It also suggests the ``loco_repeat`` parameter, and ``loco_arm`` when the policy knows its
    arms in advance (LOCO does), so that the arm is one of the trial's params (and a column of
    ``trials_dataframe()``). Call it once per trial and pass the :class:`Arm` to the other
    helpers: on a Spark worker each call is a round trip to the driver.

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
    _check_assigned(trial, attrs)
    arm = arm_from_attrs(attrs)
    _suggest_assignment(trial, arm, attrs)
    return arm


def _check_assigned(trial: BaseTrial, attrs: Mapping[str, Any]) -> None:
    """Refuse a trial that has no arm: a surplus one, or one of another sampler."""
    if attrs.get(ATTR_SURPLUS):
        raise optuna.TrialPruned(SURPLUS_MESSAGE)
    if ATTR_ARM not in attrs or ATTR_N_REPEATS not in attrs:
        raise ValueError(
            f"Trial {trial.number} has no ablation arm: its study's sampler must be "
            "optuna_spark.ablation.LOCOSampler or AblationSampler (to run an objective by "
            "hand, use the sampler's fixed_trial)."
        )


def _suggest_assignment(trial: BaseTrial, arm: Arm, attrs: Mapping[str, Any]) -> None:
    """Suggest ``loco_repeat``, and ``loco_arm`` when the arms are known in advance."""
    # The arm is a parameter when the policy knows every arm in advance (a categorical's
    # choices cannot change within a study); an adaptive policy's arm is a user attribute only.
    label = arm.label
    if ATTR_ARMS in attrs:
        label = trial.suggest_categorical(PARAM_ARM, [str(a) for a in attrs[ATTR_ARMS]])
    repeat = trial.suggest_int(PARAM_REPEAT, 0, max(int(attrs[ATTR_N_REPEATS]) - 1, 0))
    if label != arm.label or repeat != arm.repeat:
        raise ValueError(
            f"Trial {trial.number} has params {PARAM_ARM}={label!r}, {PARAM_REPEAT}={repeat} "
            f"but its LOCO assignment is {arm.label!r}, repeat {arm.repeat}."
        )


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
