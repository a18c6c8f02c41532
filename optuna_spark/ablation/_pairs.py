"""Bookkeeping of an ablation study's (arm, repeat) pairs, for :class:`AblationSampler`.

Which pairs the study's trials have taken (:func:`scan_trials`), which pair to hand out next
(:func:`choose_pair`), the value a trial's pair gives a parameter (:func:`assigned_value`) and
the repeats' seeds (:func:`repeat_seeds`). Pure functions, with no storage, lock or logging of
their own: the sampler reads the trials, holds the lock and logs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a

Pair = tuple[str, int]  # (arm label, repeat)


@dataclasses.dataclass
class StudyScan:
    """What an ablation study's trials say about its (arm, repeat) pairs.

    Attributes:
        taken: Pairs held by a running or finished trial.
        finished: Those of ``taken`` whose trial has finished.
        values: The value of each completed pair (the first objective value).
        running: Ids of the trials that hold a pair and still run.
        seeds: The seed already recorded in the study for each repeat (the first one found).
        n_waiting: How many trials wait in the queue (``enqueue_trial``, a retry).
        n_trials: How many trials the study had, in any state (the next new trial's number).
    """

    taken: set[Pair]
    finished: set[Pair]
    values: dict[Pair, float]
    running: set[int]
    seeds: dict[int, int]
    n_waiting: int
    n_trials: int


def scan_trials(
    trials: Iterable[FrozenTrial], overrides: Mapping[int, tuple[TrialState, float | None]]
) -> StudyScan:
    """Pairs taken by a running or finished trial, and other facts of the study.

    Args:
        trials: Every trial of the study.
        overrides: The state and value of trials that this process has just finished but the
            storage may still show as running, by trial id.

    Returns:
        The study's :class:`StudyScan`.
    """
    scan = StudyScan(set(), set(), {}, set(), {}, 0, 0)
    for t in trials:
        scan.n_trials += 1
        if t.state == TrialState.WAITING:
            scan.n_waiting += 1
            continue
        label = t.system_attrs.get(a.SYS_ARM)
        repeat = t.system_attrs.get(a.SYS_REPEAT)
        if label is None or repeat is None:
            continue
        pair = (str(label), int(repeat))
        scan.taken.add(pair)
        trial_id = optuna_adapter.trial_id_of(t)
        state: TrialState = t.state
        value = t.values[0] if t.values else None
        if state == TrialState.RUNNING and trial_id in overrides:
            state, value = overrides[trial_id]
        if state.is_finished():
            scan.finished.add(pair)
            if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
                scan.values.setdefault(pair, float(value))
        else:
            scan.running.add(trial_id)
        seed = t.system_attrs.get(a.SYS_SEED)
        if seed is not None:
            scan.seeds.setdefault(pair[1], int(seed))
    return scan


def choose_pair(
    pairs: Sequence[Pair],
    taken: Set[Pair],
    want_arm: str | None,
    want_repeat: int | np.integer[Any] | None,
) -> Pair | None:
    """The pair to hand out next: the first free one that matches what was asked for.

    Args:
        pairs: Every pair, in hand-out order.
        taken: The pairs held by a running or finished trial.
        want_arm: The arm that an enqueued trial asks for, or ``None`` for any.
        want_repeat: The repeat that an enqueued trial asks for, or ``None`` for any.

    Returns:
        The first matching pair not taken; when every matching pair is taken, the first
        matching pair if something was asked for (a retry runs again), else ``None`` (nothing
        is left to run).
    """
    candidates = [
        (label, repeat)
        for label, repeat in pairs
        if (want_arm is None or label == want_arm)
        and (want_repeat is None or repeat == want_repeat)
    ]
    for pair in candidates:
        if pair not in taken:
            return pair
    if want_arm is None and want_repeat is None:
        return None  # nothing left to run
    return candidates[0]  # an explicit request (a retry): run it again


def assigned_value(trial: FrozenTrial, param_name: str, distribution: BaseDistribution) -> Any:
    """The value of ``loco_arm`` or ``loco_repeat`` that the sampler recorded on ``trial``.

    Args:
        trial: A trial that the sampler's ``before_trial`` has seen.
        param_name: The parameter the objective suggests.
        distribution: The distribution it suggests it from.

    Returns:
        The trial's arm label or repeat.

    Raises:
        optuna.TrialPruned: If the trial is a surplus one, which runs nothing.
        ValueError: If the trial holds no pair, or the objective suggests another parameter or
            a distribution that does not hold the value.
    """
    system_attrs = trial.system_attrs
    if a.SYS_SURPLUS in system_attrs:
        raise optuna.TrialPruned(a.SURPLUS_MESSAGE)
    if a.SYS_ARM not in system_attrs:
        raise ValueError(
            f"Trial {trial.number} has no ablation assignment: every parameter must be given "
            "when a trial of an ablation study is enqueued."
        )
    params = system_attrs.get(a.SYS_PARAMS)
    if param_name == a.PARAM_ARM:
        value: Any = system_attrs[a.SYS_ARM]
    elif param_name == a.PARAM_REPEAT:
        value = system_attrs[a.SYS_REPEAT]
    elif params is not None and param_name in params:
        value = params[param_name]
    elif params is not None:
        raise ValueError(
            f"The objective suggested {param_name!r}, which neither configuration of this "
            f"ablation path sets (it sets {sorted(params)}). Suggest only the parameters of "
            "the tuned study."
        )
    else:
        raise ValueError(
            f"An ablation sampler only samples {a.PARAM_ARM!r} and {a.PARAM_REPEAT!r}, but "
            f"the objective suggested {param_name!r}. Keep every other parameter fixed in an "
            "ablation (or enqueue it with study.enqueue_trial)."
        )
    try:
        internal = distribution.to_internal_repr(value)
        contained = optuna_adapter.distribution_contains(distribution, internal)
    except ValueError:
        contained = False
    if not contained:
        raise ValueError(
            f"The ablation's assignment {param_name}={value!r} is not in the suggested "
            f"distribution {distribution}"
            + (
                "; suggest it with get_arm(trial)."
                if params is None
                else ": suggest each parameter as the tuned study did."
            )
        )
    return value


def repeat_seeds(seed: int | None, n_repeats: int) -> list[int]:
    """Distinct 31-bit seeds, one per repeat, derived from ``seed`` (random when ``None``)."""
    entropy = np.random.SeedSequence(seed).entropy
    seeds: list[int] = []
    for r in range(n_repeats):
        state = np.random.SeedSequence(entropy, spawn_key=(r,)).generate_state(1)
        value = int(state[0]) & 0x7FFFFFFF
        while value in seeds:
            value = (value + 1) & 0x7FFFFFFF
        seeds.append(value)
    return seeds
