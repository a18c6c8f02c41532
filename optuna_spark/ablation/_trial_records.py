"""What ``AblationSampler`` writes on a trial: its (arm, repeat), or that it is a surplus one.

The system attributes hold the sampler's bookkeeping (read back by ``scan_trials`` and
``assigned_value``); the user attributes describe the arm for the objective, the dashboard and
the report. Also the pair an enqueued trial asks for, and the messages of surplus trials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._pairs import Pair
from optuna_spark.ablation._plan import RepeatRule
from optuna_spark.ablation._policy import AblationPolicy

_logger = logging.getLogger(__name__)


def arm_name(spec: ArmSpec) -> str:
    """A single-component arm's component (``"area"``); the base's and others' label."""
    if spec.kind in a.KINDS[1:] and len(spec.left_out) == 1:
        return spec.left_out[0]
    return spec.label


def user_attrs(
    policy: AblationPolicy,
    spec: ArmSpec,
    pair: Pair,
    seed: int,
    *,
    rule: RepeatRule,
    arms: Sequence[str] | None,
) -> dict[str, Any]:
    """The user attributes of a trial of ``pair`` (``loco_arm``, ``loco_seed``, ...).

    Args:
        policy: The sampler's policy.
        spec: The pair's arm.
        pair: The (arm, repeat) handed out.
        seed: The repeat's seed.
        rule: The sampler's repeats.
        arms: Every arm's label when they are known in advance, else ``None``.

    Returns:
        The attributes by name.
    """
    attrs: dict[str, Any] = {
        **policy.trial_attrs(),
        a.ATTR_ARM: spec.label,
        a.ATTR_KIND: spec.kind,
        a.ATTR_NAME: arm_name(spec),
        **policy.catalog.record(spec),
        a.ATTR_REPEAT: pair[1],
        a.ATTR_SEED: seed,
        a.ATTR_N_REPEATS: rule.high,
        a.ATTR_REFERENCE: policy.reference,
        a.ATTR_MODE: policy.mode,
    }
    if arms is not None:
        attrs[a.ATTR_ARMS] = list(arms)
    if rule.adaptive:
        attrs[a.ATTR_ADAPTIVE] = [rule.low, rule.high]
    if spec.params is not None:
        attrs[a.ATTR_PARAMS] = dict(spec.params)
    return attrs


def distributions(n_repeats: int, arms: Sequence[str] | None) -> dict[str, BaseDistribution]:
    """The distributions of ``loco_repeat`` and, when the arms are known, ``loco_arm``."""
    out: dict[str, BaseDistribution] = {a.PARAM_REPEAT: IntDistribution(0, n_repeats - 1)}
    if arms is not None:
        out[a.PARAM_ARM] = CategoricalDistribution(tuple(arms))
    return out


def record_pair(
    storage: BaseStorage, trial: FrozenTrial, pair: Pair, spec: ArmSpec, seed: int
) -> None:
    """Record ``pair`` in the trial's system attributes, the arm last.

    A reader that sees the arm (without the sampler's lock) sees the rest.
    """
    trial_id = optuna_adapter.trial_id_of(trial)
    storage.set_trial_system_attr(trial_id, a.SYS_REPEAT, pair[1])
    storage.set_trial_system_attr(trial_id, a.SYS_SEED, seed)
    if spec.params is not None:
        storage.set_trial_system_attr(trial_id, a.SYS_PARAMS, dict(spec.params))
    storage.set_trial_system_attr(trial_id, a.SYS_ARM, pair[0])


def record_surplus(storage: BaseStorage, trial: FrozenTrial) -> dict[str, Any]:
    """Mark the trial as a surplus one, which runs nothing; returns its user attributes."""
    storage.set_trial_system_attr(optuna_adapter.trial_id_of(trial), a.SYS_SURPLUS, True)
    return {a.ATTR_SURPLUS: True}


def set_user_attrs(storage: BaseStorage, trial: FrozenTrial, attrs: Mapping[str, Any]) -> None:
    """Set ``attrs`` on the trial in the storage and on ``trial`` itself.

    ``optuna.Trial.user_attrs`` reads the frozen trial it handed the sampler, not the storage;
    without the second, the objective would not see its arm.
    """
    trial_id = optuna_adapter.trial_id_of(trial)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
        trial.user_attrs[key] = value


def requested_pair(
    number: int, fixed: Mapping[str, Any], arms: Sequence[str], n_repeats: int
) -> tuple[str | None, int | None]:
    """The arm and repeat an enqueued trial asks for (``None``: any), invalid ones dropped.

    Args:
        number: The trial's number, for the warnings.
        fixed: The trial's fixed parameters.
        arms: The arms known so far.
        n_repeats: The most repeats an arm runs.

    Returns:
        The requested arm and repeat; one that is not the sampler's is ``None``, with a
        warning.
    """
    want_arm = fixed.get(a.PARAM_ARM)
    want_repeat = fixed.get(a.PARAM_REPEAT)
    if want_arm is not None and want_arm not in arms:
        _logger.warning(
            "Trial %d was enqueued with %s=%r, which is not an arm of this sampler (%s).",
            number,
            a.PARAM_ARM,
            want_arm,
            list(arms),
        )
        want_arm = None
    if want_repeat is not None and not (
        isinstance(want_repeat, (int, np.integer)) and 0 <= want_repeat < n_repeats
    ):
        _logger.warning(
            "Trial %d was enqueued with %s=%r, which is not a repeat of this sampler.",
            number,
            a.PARAM_REPEAT,
            want_repeat,
        )
        want_repeat = None
    return want_arm, None if want_repeat is None else int(want_repeat)


def log_surplus(number: int, *, running: bool, stopping: bool) -> None:
    """Say why trial ``number`` runs nothing.

    Args:
        number: The surplus trial's number.
        running: Whether trials of the study still run.
        stopping: Whether the study was asked to stop.
    """
    if not running and not stopping:  # optimized again once finished
        _logger.warning(
            "Trial %d is pruned without running: this ablation study has already run "
            "every (arm, repeat). Use a new sampler (more repeats, other arms) to run more.",
            number,
        )
    else:
        # Another thread took the last arm between this thread's check of the stop flag and
        # its ask, or the study ended while it waited; the trial ends at once, without
        # running anything.
        _logger.info(
            "Trial %d is pruned without running: every (arm, repeat) has been handed out.",
            number,
        )
