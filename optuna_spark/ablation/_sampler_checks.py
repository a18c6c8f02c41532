"""The checks of ``AblationSampler``: its arguments, the policy's arms, the study's direction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection

from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._plan import RepeatRule
from optuna_spark.ablation._policy import AblationPolicy


def check_policy(policy: object) -> AblationPolicy:
    """``policy``, if it is an :class:`AblationPolicy`; else a ``TypeError``."""
    if not isinstance(policy, AblationPolicy):
        raise TypeError(
            f"policy must be an optuna_spark.ablation.AblationPolicy, but got "
            f"{type(policy).__name__}."
        )
    return policy


def check_rule(policy: AblationPolicy, rule: RepeatRule) -> None:
    """Refuse adaptive repeats that ``policy`` cannot run, and invalid stopping parameters.

    Raises:
        ValueError: Adaptive repeats with an adaptive policy or one without a reference, an
            ``alpha`` outside (0, 1), an invalid ``min_effect``, or ``min_effect`` with a
            fixed number of repeats.
        ImportError: Adaptive repeats without SciPy (their t-tests need it).
    """
    if not rule.adaptive:
        if rule.min_effect is not None:
            raise ValueError(
                "min_effect stops arms early, which only adaptive repeats do: give "
                f"n_repeats=(low, high), or leave min_effect out (got min_effect="
                f"{rule.min_effect})."
            )
        return
    if policy.adaptive or policy.reference is None:
        raise ValueError(
            f"Adaptive n_repeats=(low, high) needs a policy whose arms are known in advance and "
            f"compared with a reference arm, which {type(policy).__name__} is not; give an int."
        )
    if not 0.0 < rule.alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), but got alpha={rule.alpha}.")
    min_effect = rule.min_effect
    if min_effect is not None and not (math.isfinite(min_effect) and min_effect > 0):
        raise ValueError(f"min_effect must be a positive number or None, but got {min_effect=}.")
    import_ablation_dependency("scipy.stats")  # the decisions' t-tests: fail before any work


def check_reference(
    policy: AblationPolicy, rule: RepeatRule, first: Mapping[str, ArmSpec]
) -> None:
    """Adaptive repeats compare each arm with the reference arm, which must run."""
    if rule.adaptive and policy.reference not in first:
        raise ValueError(
            f"Adaptive n_repeats compare each arm with the reference arm "
            f"{policy.reference!r}, which this policy does not run (include_base=False?)."
        )


def check_direction(policy: AblationPolicy, study: optuna.Study) -> None:
    """An ablation path of a maximized study must run in a maximized study (and so on)."""
    wanted = policy.direction
    if wanted is None:
        return
    actual = "minimize" if study.directions[0] == StudyDirection.MINIMIZE else "maximize"
    if len(study.directions) > 1 or actual != wanted:
        raise ValueError(
            f"{type(policy).__name__} compares results to {wanted} them, but the "
            f"study's direction is {actual}: create it with direction={wanted!r}."
        )


def checked_arms(
    policy: AblationPolicy, specs: Sequence[ArmSpec], known: Mapping[str, ArmSpec]
) -> dict[str, ArmSpec]:
    """The policy's arms by label, checked against its catalog and what it returned before.

    Args:
        policy: The policy.
        specs: What its ``arms()`` returned now.
        known: Every arm it returned before, by label.

    Returns:
        The arms by label, in the policy's order.

    Raises:
        TypeError: An arm is not an :class:`ArmSpec`.
        ValueError: A label twice, an arm that changed or disappeared, or no arm at all.
    """
    name = type(policy).__name__
    arms: dict[str, ArmSpec] = {}
    for spec in specs:
        if not isinstance(spec, ArmSpec):
            raise TypeError(f"{name}.arms() must return ArmSpec objects, but returned {spec!r}.")
        if spec.label in arms:
            raise ValueError(
                f"{name}.arms() returned the label {spec.label!r} twice; each arm needs its own "
                "label."
            )
        if spec.params is None:
            policy.catalog.check(spec)
        before = known.get(spec.label)
        if before is not None and before != spec:
            raise ValueError(
                f"{name}.arms() changed arm {spec.label!r} from {before} to {spec}; an arm's "
                "label must keep meaning the same arm."
            )
        arms[spec.label] = spec
    missing = [label for label in known if label not in arms]
    if missing:
        raise ValueError(
            f"{name}.arms() no longer returns {missing}; a policy must keep returning the arms "
            "it returned before."
        )
    if not arms:
        raise ValueError(f"{name}.arms() returned no arm to run.")
    return arms
