"""What the report reads from an ablation study: its arms, their values, the decisions taken."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._sequential import Decision
from optuna_spark.ablation._sequential import look_points


def minimize_of(
    study: optuna.Study,
    target: Callable[[FrozenTrial], float] | None,
    direction: str | StudyDirection | None,
) -> bool:
    """Whether a smaller reported value is better (``direction``, else the study's)."""
    if direction is None:
        if len(study.directions) > 1:
            raise ValueError(
                "A multi-objective study needs target= (a trial's value to report) and "
                "direction= ('minimize' or 'maximize')."
            )
        return study.direction == StudyDirection.MINIMIZE
    if len(study.directions) > 1 and target is None:
        raise ValueError("A multi-objective study needs target= (a trial's value to report).")
    if isinstance(direction, StudyDirection):
        return direction == StudyDirection.MINIMIZE
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', but got {direction=}.")
    return direction == "minimize"


@dataclasses.dataclass
class Found:
    """What an ablation study's trials hold, for the report."""

    labels: list[str]
    values: dict[str, dict[Any, list[float]]]  # completed values by arm, then by seed
    kinds: dict[str, tuple[str, str]]  # (kind, name) by arm
    left_out: dict[str, tuple[str, ...]]  # the components each arm leaves out
    reference: str
    mode: str
    looks: int  # how often an arm may have been looked at (adaptive repeats), else 1


def collect(study: optuna.Study, target: Callable[[FrozenTrial], float] | None) -> Found:
    """Every arm's label, and each arm's completed values grouped by seed (or repeat)."""
    found = Found([], {}, {}, {}, a.BASE, "out", 1)
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        label = attrs.get(a.ATTR_ARM)
        if label is None:
            continue
        for known in [*attrs.get(a.ATTR_ARMS, ()), label]:
            if known not in found.labels:
                found.labels.append(known)
        found.kinds[label] = (str(attrs.get(a.ATTR_KIND)), str(attrs.get(a.ATTR_NAME)))
        found.left_out[label] = a.arm_from_attrs(attrs).left_out
        found.reference = str(attrs.get(a.ATTR_REFERENCE) or a.BASE)
        found.mode = str(attrs.get(a.ATTR_MODE, "out"))
        adaptive = attrs.get(a.ATTR_ADAPTIVE)
        if adaptive:
            looks = len(look_points(int(adaptive[0]), int(adaptive[1])))
            found.looks = max(found.looks, looks)
        if trial.state != TrialState.COMPLETE:
            continue
        value = target(trial) if target is not None else trial.value
        if value is None or not math.isfinite(value):
            continue
        key = attrs.get(a.ATTR_SEED, ("repeat", attrs.get(a.ATTR_REPEAT)))
        found.values.setdefault(label, {}).setdefault(key, []).append(float(value))
    if not found.labels:
        raise ValueError(
            f"Study {study.study_name!r} has no trials of an ablation sampler (no 'loco_arm' "
            "user attribute)."
        )
    for label in found.labels:
        if label not in found.kinds:  # an arm of the list that has not run yet
            with contextlib.suppress(ValueError):
                found.kinds[label] = a.parse_label(label)
    if found.reference in found.labels:
        found.labels.remove(found.reference)
        found.labels.insert(0, found.reference)
    return found


def decisions(study: optuna.Study) -> dict[str, Decision]:
    """Why each arm of an adaptive study stopped getting repeats, as the sampler recorded."""
    return {
        key[len(a.SYS_DECISION) :]: Decision.from_attr(value)
        for key, value in optuna_adapter.storage_of(study)
        .get_study_system_attrs(optuna_adapter.study_id_of(study))
        .items()
        if key.startswith(a.SYS_DECISION)
    }
