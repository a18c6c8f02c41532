"""What an ablation study may run now, from one scan of its trials (for ``AblationSampler``).

Given the study's :class:`~optuna_spark.ablation._pairs.StudyScan` and the policy's arms:
the repeats each arm may have now (:func:`wanted_repeats`, with adaptive repeats the
sequential decisions), the free (arm, repeat) pairs (:func:`free_pairs`), what a policy sees
(:func:`history_of`) and what a driver may do (:func:`availability_of`). Pure functions:
``_planner.Planner`` reads the storage and records the decisions; the sampler holds the lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from optuna_spark._handout import Availability
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation import _sequential as seq
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._pairs import Pair
from optuna_spark.ablation._pairs import StudyScan
from optuna_spark.ablation._policy import AblationHistory


@dataclasses.dataclass
class Plan:
    """What may run now: the policy's arms, the free pairs, and whether a trial must wait.

    Attributes:
        arms: The policy's arms by label, in hand-out order.
        free: The pairs that may be handed out now, in hand-out order.
        must_wait: Nothing is free, but a running trial of this sampler may free something
            (an adaptive policy or adaptive repeats decide from its result).
    """

    arms: dict[str, ArmSpec]
    free: list[Pair]
    must_wait: bool


@dataclasses.dataclass(frozen=True)
class RepeatRule:
    """How many repeats an arm gets: ``low`` to ``high``, and the adaptive stopping rule.

    Attributes:
        low: The repeats every arm runs (``== high`` for a fixed number).
        high: The most repeats an arm runs.
        alpha: Family-wise error rate of the adaptive decisions.
        min_effect: A difference below this is negligible (adaptive repeats only).
        futility: Whether to stop arms that ``high`` repeats would not decide.
    """

    low: int
    high: int
    alpha: float = 0.05
    min_effect: float | None = None
    futility: bool = True

    @property
    def adaptive(self) -> bool:
        """Whether an arm's repeats depend on its results."""
        return self.low != self.high


def availability_of(scan: StudyScan, plan: Plan) -> Availability:
    """What a trial asked for now would get (a trial waiting in the queue comes first)."""
    if scan.n_waiting:
        return Availability.READY
    if plan.must_wait:
        return Availability.WAIT
    return Availability.READY if plan.free else Availability.EXHAUSTED


def free_pairs(arms: Sequence[str], wanted: Mapping[str, int], scan: StudyScan) -> list[Pair]:
    """The pairs not taken yet among the repeats each arm may have, repeat by repeat."""
    most = max(wanted.values(), default=0)
    return [
        (label, r)
        for r in range(most)
        for label in arms
        if r < wanted[label] and (label, r) not in scan.taken
    ]


def history_of(
    scan: StudyScan, *, minimize: bool, n_repeats: int, memory: dict[str, Any]
) -> AblationHistory:
    """What an adaptive policy sees of the study."""
    values: dict[str, dict[int, float]] = {}
    for (label, repeat), value in scan.values.items():
        values.setdefault(label, {})[repeat] = value
    n_finished: dict[str, int] = {}
    for label, _ in scan.finished:
        n_finished[label] = n_finished.get(label, 0) + 1
    n_running: dict[str, int] = {}
    for label, _ in scan.taken - scan.finished:
        n_running[label] = n_running.get(label, 0) + 1
    return AblationHistory(minimize, values, n_finished, n_running, n_repeats, memory)


def memory_of(study_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's memory among a study's system attributes."""
    return {
        key[len(a.SYS_MEMORY) :]: value
        for key, value in study_attrs.items()
        if key.startswith(a.SYS_MEMORY)
    }


def wanted_repeats(
    scan: StudyScan,
    arms: Sequence[str],
    reference: str,
    rule: RepeatRule,
    decided: Collection[str],
) -> tuple[dict[str, int], dict[str, seq.Decision]]:
    """Repeats each arm may have now, and the decisions taken at this look.

    An undecided arm gets the repeats its next look needs (plus one for each repeat of it or
    of the reference that failed), never more: repeats beyond a look would run after a
    decision that may stop the arm. A decided arm (in ``decided``, or decided now) keeps what
    it has. The reference gets as many as the arm that has most.

    Args:
        scan: The study's pairs.
        arms: The arms' labels.
        reference: The reference arm's label.
        rule: The adaptive repeats.
        decided: The arms whose decision the study has recorded.

    Returns:
        The repeats by arm, and the new decisions by arm (for the caller to record).
    """
    by_arm: dict[str, dict[int, float]] = {}
    for (label, r), value in scan.values.items():
        by_arm.setdefault(label, {})[r] = value
    n_taken_of: dict[str, int] = {}
    for label, r in scan.taken:
        n_taken_of[label] = max(n_taken_of.get(label, 0), r + 1)
    others = [label for label in arms if label != reference]
    wanted: dict[str, int] = {}
    decisions: dict[str, seq.Decision] = {}
    for label in others:
        n_taken = n_taken_of.get(label, 0)
        decision = None
        if label not in decided:
            decision = _decide(scan, label, reference, by_arm, rule, len(others))
            if decision is None:
                wanted[label] = _next_look(scan, label, reference, by_arm, rule, n_taken)
                continue
            decisions[label] = decision
        wanted[label] = n_taken
    taken_ref = n_taken_of.get(reference, 0)
    wanted[reference] = max([rule.low if others else 0, taken_ref, *wanted.values()])
    return wanted, decisions


def _decide(
    scan: StudyScan,
    label: str,
    reference: str,
    by_arm: Mapping[str, Mapping[int, float]],
    rule: RepeatRule,
    n_arms: int,
) -> seq.Decision | None:
    """The arm's decision at this look, if it has one."""
    d = seq.paired_differences(by_arm.get(label, {}), by_arm.get(reference, {}))
    n_taken = max((r + 1 for lb, r in scan.taken if lb == label), default=0)
    settled = n_taken >= rule.high and all(
        (lb, r) in scan.finished for lb in (label, reference) for r in range(rule.high)
    )
    return seq.decide(
        d,
        low=rule.low,
        high=rule.high,
        alpha=rule.alpha,
        n_arms=n_arms,
        min_effect=rule.min_effect,
        futility=rule.futility,
        settled=settled,
    )


def _next_look(
    scan: StudyScan,
    label: str,
    reference: str,
    by_arm: Mapping[str, Mapping[int, float]],
    rule: RepeatRule,
    n_taken: int,
) -> int:
    """The repeats an undecided arm needs for its next look (failed repeats made up)."""
    values, ref_values = by_arm.get(label, {}), by_arm.get(reference, {})
    n_pairs = len(seq.paired_differences(values, ref_values))
    lost = sum(
        1
        for r in range(n_taken)
        if (label, r) in scan.finished
        and (reference, r) in scan.finished
        and (r not in values or r not in ref_values)
    )
    look = next((p for p in seq.look_points(rule.low, rule.high) if p > n_pairs), rule.high)
    return min(rule.high, look + lost)
