"""What an ablation study may run now, read from its storage (for ``AblationSampler``).

:class:`Planner` holds what the sampler knows of its ablation: the policy, the repeats, the
arms returned so far and the repeats' seeds. :meth:`Planner.look` reads the study's trials
once and plans with the pure functions of ``_plan``; it records in the study what an adaptive
policy or adaptive repeats decided. The caller holds the sampler's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._pairs import Pair
from optuna_spark.ablation._pairs import StudyScan
from optuna_spark.ablation._pairs import choose_pair
from optuna_spark.ablation._pairs import repeat_seeds
from optuna_spark.ablation._pairs import scan_trials
from optuna_spark.ablation._plan import Plan
from optuna_spark.ablation._plan import RepeatRule
from optuna_spark.ablation._plan import free_pairs
from optuna_spark.ablation._plan import history_of
from optuna_spark.ablation._plan import memory_of
from optuna_spark.ablation._plan import wanted_repeats
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._policy import AblationPolicy
from optuna_spark.ablation._sampler_checks import check_reference
from optuna_spark.ablation._sampler_checks import checked_arms
from optuna_spark.ablation._trial_records import requested_pair

_logger = logging.getLogger(__name__)

_UNSET = object()


class Planner:
    """An ablation's arms, repeats and seeds, and what its study may run now.

    Args:
        policy: What to run.
        rule: How many repeats each arm gets.
        seed: Seed from which the repeats' seeds derive (``None``: at random).

    Raises:
        ValueError: The policy's first arms are invalid, or adaptive repeats without the
            reference arm among them.
    """

    def __init__(self, policy: AblationPolicy, rule: RepeatRule, seed: int | None) -> None:
        self.policy = policy
        self.rule = rule
        self.seed = seed
        self.seeds = repeat_seeds(seed, rule.high)
        self.known: dict[str, ArmSpec] = {}
        # Asked first with an empty history (an adaptive policy: what it runs first).
        first = self.checked(policy.arms(AblationHistory(True, {}, {}, {}, rule.high, {})))
        #: The arms, when the policy's do not depend on results.
        self.static = None if policy.adaptive else first
        check_reference(policy, rule, first)

    @property
    def static_final(self) -> bool:
        """Whether the arms and their repeats are known in advance."""
        return self.static is not None and not self.rule.adaptive

    @property
    def static_labels(self) -> list[str] | None:
        """The arms' labels when they are known in advance, else ``None``."""
        return None if self.static is None else list(self.static)

    def look(
        self,
        study: optuna.Study,
        ended: Mapping[int, tuple[TrialState, float | None]],
        mine: Set[int],
    ) -> tuple[StudyScan, Plan]:
        """The study's pairs, and what the policy and the repeats allow to run now.

        One read of the study's trials; the study's system attributes are read too when the
        policy or the repeats are adaptive (the policy's memory, the decisions taken).

        Args:
            study: The ablation study.
            ended: The state and value of trials just finished in this process, by trial id.
            mine: The ids of the trials this sampler handed out in this process.

        Returns:
            The study's scan, and the plan.
        """
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        scan = scan_trials(storage.get_all_trials(study_id, deepcopy=False), ended)
        self._keep_recorded_seeds(scan.seeds)
        study_attrs: Mapping[str, Any] = {}
        if not self.static_final:
            study_attrs = storage.get_study_system_attrs(study_id)
        if self.static is not None:
            arms = self.static
        else:
            arms = self._policy_arms(study, scan, study_attrs)
        wanted = self._wanted(study, scan, arms, study_attrs)
        free = free_pairs(list(arms), wanted, scan)
        adaptive = self.rule.adaptive or self.static is None
        must_wait = adaptive and not free and bool(scan.running & mine)
        return scan, Plan(arms, free, must_wait)

    def choose(
        self, number: int, plan: Plan, taken: Set[Pair], fixed: Mapping[str, Any]
    ) -> Pair | None:
        """The pair for trial ``number``: the first free one, or the one it was enqueued with.

        Args:
            number: The trial's number.
            plan: What may run now.
            taken: The pairs held by a running or finished trial.
            fixed: The trial's fixed parameters (``loco_arm``, ``loco_repeat`` of a retry).

        Returns:
            The pair, or ``None`` when nothing is left to run.
        """
        high = self.rule.high
        want_arm, want_repeat = requested_pair(number, fixed, list(self.known), high)
        if want_arm is None and want_repeat is None:
            return plan.free[0] if plan.free else None
        every = [(label, r) for r in range(high) for label in self.known]
        return choose_pair(every, taken, want_arm, want_repeat)

    def checked(self, specs: Sequence[ArmSpec]) -> dict[str, ArmSpec]:
        """The policy's arms by label (checked), remembered as known."""
        arms = checked_arms(self.policy, specs, self.known)
        self.known.update(arms)
        return arms

    def _policy_arms(
        self, study: optuna.Study, scan: StudyScan, study_attrs: Mapping[str, Any]
    ) -> dict[str, ArmSpec]:
        """What an adaptive policy runs now; what it decided (its memory) is recorded."""
        minimize = study.directions[0] == StudyDirection.MINIMIZE
        memory = memory_of(study_attrs)
        recorded = dict(memory)
        history = history_of(scan, minimize=minimize, n_repeats=self.rule.high, memory=memory)
        arms = self.checked(self.policy.arms(history))
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        for key, value in history.memory.items():
            if recorded.get(key, _UNSET) != value:
                storage.set_study_system_attr(study_id, a.SYS_MEMORY + key, value)
        return arms

    def _wanted(
        self,
        study: optuna.Study,
        scan: StudyScan,
        arms: Mapping[str, ArmSpec],
        study_attrs: Mapping[str, Any],
    ) -> dict[str, int]:
        """Repeats each arm may have now; the adaptive repeats' new decisions are recorded."""
        if not self.rule.adaptive:
            return dict.fromkeys(arms, self.rule.high)
        decided = {
            key[len(a.SYS_DECISION) :] for key in study_attrs if key.startswith(a.SYS_DECISION)
        }
        reference = str(self.policy.reference)
        wanted, decisions = wanted_repeats(scan, list(arms), reference, self.rule, decided)
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        for label, decision in decisions.items():
            storage.set_study_system_attr(study_id, a.SYS_DECISION + label, decision.to_attr())
        return wanted

    def _keep_recorded_seeds(self, recorded: Mapping[int, int]) -> None:
        """Use the seeds the study already ran with, so that a resumed study stays paired."""
        for repeat, seed in recorded.items():
            if repeat >= self.rule.high or seed == self.seeds[repeat] or self.seed is None:
                continue
            _logger.warning(
                "The study already ran repeat %d with seed %d; the sampler (seed=%d) keeps "
                "using it (instead of %d) so that arms stay paired.",
                repeat,
                seed,
                self.seed,
                self.seeds[repeat],
            )
            self.seeds[repeat] = seed
