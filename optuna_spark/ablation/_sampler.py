"""``AblationSampler``: runs an :class:`AblationPolicy` as the search space of an Optuna study."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._waiting import may_wait
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation import _sequential as seq
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._arm_specs import check_repeats
from optuna_spark.ablation._arm_specs import check_seed
from optuna_spark.ablation._imports import import_ablation_dependency
from optuna_spark.ablation._pairs import Pair
from optuna_spark.ablation._pairs import StudyScan
from optuna_spark.ablation._pairs import assigned_value
from optuna_spark.ablation._pairs import choose_pair
from optuna_spark.ablation._pairs import repeat_seeds
from optuna_spark.ablation._pairs import scan_trials
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._policy import AblationPolicy

if TYPE_CHECKING:
    from optuna.study import Study

_logger = logging.getLogger(__name__)

#: How long a thread waiting for a running trial re-reads the storage at the latest (trials of
#: this process wake it at once; this is for trials finished by another process).
_POLL = 1.0


@dataclasses.dataclass
class _Plan:
    """What may run now: the policy's arms, each one's repeats, and the free pairs."""

    arms: dict[str, ArmSpec]
    free: list[Pair]
    must_wait: bool


class AblationSampler(BaseSampler):
    """Runs an ablation policy: each of its arms ``n_repeats`` times, with paired seeds.

    Each (arm, repeat) is handed out exactly once, repeat by repeat, and the study stops by
    itself when the policy has nothing more to run; :class:`LOCOSampler` describes these
    guarantees (it is this sampler with the leave-one-out policy). Repeat ``r`` of every arm
    gets the same seed, so arms are compared seed by seed.

    With an adaptive policy, workers that ask while the policy waits for results wait for a
    running trial to finish; with ``n_repeats=(low, high)``, an arm gets more than ``low``
    repeats only while its paired difference from the policy's reference arm is undecided (see
    the docs' statistics section: a t-test at each of a few looks, at level
    ``alpha / (arms * looks)``).

    Args:
        policy: What to run: an :class:`AblationPolicy` (LOCO, leave-one-in, the ablation path,
            or your own).
        n_repeats: How many times each arm runs (an int), or ``(low, high)``: adaptive repeats,
            from ``low`` for every arm up to ``high`` for arms still undecided.
        seed: Seed from which the repeats' seeds derive. ``None`` draws one at random.
        alpha: Family-wise error rate of the adaptive repeats' decisions.
        min_effect: With adaptive repeats, a difference from the reference smaller than this
            (in objective units) is *negligible*: such an arm stops getting repeats once its
            interval lies within ``(-min_effect, min_effect)``.
        futility: With adaptive repeats, also stop an arm whose effect is confidently smaller
            than what ``high`` repeats could detect (it cannot add false discoveries).

    Raises:
        ValueError: Adaptive repeats with a policy that does not run its reference arm or
            whose arms depend on results, an invalid ``alpha`` or ``min_effect``, or
            ``min_effect`` with a fixed number of repeats.

    Example:

        Adaptive repeats: the arm that matters is decided after a few repeats, the one that
        does not stops once more repeats could not make it significant.

        .. testcode::

            import numpy as np
            import optuna
            from optuna_spark.ablation import AblationSampler
            from optuna_spark.ablation import LeaveOneOut
            from optuna_spark.ablation import ablation_report
            from optuna_spark.ablation import get_arm


            def objective(trial):
                arm = get_arm(trial)
                noise = np.random.default_rng([arm.seed, len(arm.label)]).normal(0.0, 0.3)
                return 1.0 + noise + (2.0 if not arm.is_enabled("trick") else 0.0)


            policy = LeaveOneOut(components=["trick", "fad"])
            sampler = AblationSampler(policy, n_repeats=(3, 20), seed=0)
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective)
            report = ablation_report(study).set_index("arm")
            assert report.loc["component:trick", "stopped"] == "significant"
            assert len(study.trials) < 3 * 20
    """

    def __init__(
        self,
        policy: AblationPolicy,
        *,
        n_repeats: int | tuple[int, int] = 1,
        seed: int | None = None,
        alpha: float = 0.05,
        min_effect: float | None = None,
        futility: bool = True,
    ) -> None:
        if not isinstance(policy, AblationPolicy):
            raise TypeError(
                f"policy must be an optuna_spark.ablation.AblationPolicy, but got "
                f"{type(policy).__name__}."
            )
        self._policy = policy
        self._low, self._high = check_repeats(n_repeats)
        self._adaptive_repeats = self._low != self._high
        if self._adaptive_repeats:
            _check_adaptive_repeats(policy, alpha, min_effect)
        self._alpha, self._min_effect, self._futility = alpha, min_effect, futility
        self._seed = check_seed(seed)
        self._seeds = repeat_seeds(self._seed, self._high)
        if not self._adaptive_repeats and min_effect is not None:
            raise ValueError(
                "min_effect stops arms early, which only adaptive repeats do: give "
                f"n_repeats=(low, high), or leave min_effect out (got {min_effect=})."
            )
        self._known: dict[str, ArmSpec] = {}
        # Asked first with an empty history (an adaptive policy: what it runs first).
        first = self._checked(policy.arms(_empty(self)))
        self._static = None if policy.adaptive else first
        if self._adaptive_repeats and policy.reference not in first:
            raise ValueError(
                f"Adaptive n_repeats compare each arm with the reference arm "
                f"{policy.reference!r}, which this policy does not run (include_base=False?)."
            )
        self._direction_checked = False
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._mine: set[int] = set()  # trials this sampler object handed out (in this process)
        self._ended: dict[int, tuple[TrialState, float | None]] = {}  # told, maybe not stored

    def __getstate__(self) -> dict[Any, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_finished", "_mine", "_ended"):
            del state[key]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._mine, self._ended = set(), {}

    # -----------------------------------------------------------------------------------------
    # Public.

    @property
    def policy(self) -> AblationPolicy:
        """The policy this sampler runs."""
        return self._policy

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms' labels in hand-out order (those known so far, for an adaptive policy)."""
        return tuple(self._static or self._known)

    @property
    def n_repeats(self) -> int | tuple[int, int]:
        """How many times each arm runs: an int, or ``(low, high)`` for adaptive repeats."""
        return (self._low, self._high) if self._adaptive_repeats else self._high

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seed of each repeat (the same for every arm)."""
        return tuple(self._seeds)

    @property
    def n_trials(self) -> int:
        """How many trials the known arms take at most: arms times (the most) repeats."""
        return len(self.arms) * self._high

    def is_exhausted(self, study: Study) -> bool:
        """Whether nothing more will be handed out: every (arm, repeat) is running or finished,
        and the policy will add nothing (nothing of an adaptive one still runs).

        A driver that hands out trials one at a time (:class:`optuna_spark.SparkExecutor`) asks
        this before each trial. A trial waiting in the queue keeps it ``False``.
        """
        with self._lock:
            scan, plan = self._look(study)
        return scan.n_waiting == 0 and not plan.free and not plan.must_wait

    def must_wait(self, study: Study) -> bool:
        """Whether a trial asked for now would have to wait for a running trial to finish.

        That happens with an adaptive policy or adaptive repeats, when what comes next depends
        on results not in yet. A driver (:class:`optuna_spark.SparkExecutor`) asks this first
        and keeps the worker waiting instead of making a trial.
        """
        with self._lock:
            scan, plan = self._look(study)
        return scan.n_waiting == 0 and plan.must_wait

    def fixed_trial(self, arm: str = a.BASE, repeat: int = 0) -> FrozenTrial:
        """A trial of ``arm`` and ``repeat`` to run an objective by hand, without a study.

        Args:
            arm: An arm's label, as in :attr:`arms` (``"base"``, ``"feature:area"``, ...).
            repeat: The repeat, from 0 to the most repeats minus one.

        Returns:
            A ``FrozenTrial`` whose ``suggest_*`` and ``user_attrs`` are those a study would
            give that arm and repeat.

        Example:

            .. testcode::

                from optuna_spark.ablation import LOCOSampler
                from optuna_spark.ablation import get_arm

                sampler = LOCOSampler(features=["area", "rooms"], n_repeats=2, seed=0)
                arm = get_arm(sampler.fixed_trial("feature:rooms", repeat=1))
                assert (arm.feature, arm.repeat, arm.seed) == ("rooms", 1, sampler.seeds[1])
        """
        if arm not in self._known:
            raise ValueError(f"Unknown arm {arm!r}; the arms are {list(self.arms)}.")
        if isinstance(repeat, bool) or not 0 <= repeat < self._high:
            raise ValueError(f"repeat must be in [0, {self._high - 1}], but got {repeat=}.")
        spec = self._known[arm]
        return optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params={a.PARAM_ARM: arm, a.PARAM_REPEAT: repeat}
            if self._static is not None
            else {a.PARAM_REPEAT: repeat},
            distributions=self._distributions(),
            user_attrs=self._user_attrs(spec, repeat, self._seeds[repeat]),
            system_attrs={} if spec.params is None else {a.SYS_PARAMS: dict(spec.params)},
        )

    # -----------------------------------------------------------------------------------------
    # BaseSampler.

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return assigned_value(trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        system_attrs = trial.system_attrs
        trial_id = optuna_adapter.trial_id_of(trial)
        self._check_direction(study)
        if a.SYS_ARM in system_attrs or a.SYS_SURPLUS in system_attrs:
            if a.SYS_ARM in system_attrs:  # a retry that carries its pair: ours to wait for
                with self._lock:
                    self._mine.add(trial_id)
            return
        fixed = {**system_attrs.get("fixed_params", {}), **trial.params}
        storage = optuna_adapter.storage_of(study)
        with self._lock:
            # Reading what is taken and recording this trial's pair happen under one lock, so
            # that two threads of this process never take the same pair.
            while True:
                scan, plan = self._look(study)
                pair = self._choose(trial.number, plan, scan.taken, fixed)
                if (
                    pair is not None
                    or not plan.must_wait
                    or scan.n_waiting
                    or not may_wait()  # a driver parks its workers' asks itself
                    or optuna_adapter.stop_requested(study)
                ):
                    break
                self._finished.wait(_POLL)  # for a running trial whose result decides
            if pair is None:
                user_attrs: dict[str, Any] = {a.ATTR_SURPLUS: True}
                storage.set_trial_system_attr(trial_id, a.SYS_SURPLUS, True)
                self._log_surplus(trial.number, scan, optuna_adapter.stop_requested(study))
            else:
                label, repeat = pair
                spec = plan.arms.get(label) or self._known[label]
                seed = int(scan.seeds.get(repeat, self._seeds[repeat]))
                storage.set_trial_system_attr(trial_id, a.SYS_REPEAT, repeat)
                storage.set_trial_system_attr(trial_id, a.SYS_SEED, seed)
                if spec.params is not None:
                    storage.set_trial_system_attr(trial_id, a.SYS_PARAMS, dict(spec.params))
                # The arm last: a reader that sees it (without the lock) sees the rest.
                storage.set_trial_system_attr(trial_id, a.SYS_ARM, label)
                self._mine.add(trial_id)
                user_attrs = self._user_attrs(spec, repeat, seed)
                if pair in scan.taken:
                    user_attrs[a.ATTR_DUPLICATE] = True
            for key, value in user_attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
                # ``optuna.Trial.user_attrs`` reads the frozen trial it passed us, not the
                # storage; without this the objective would not see its arm.
                trial.user_attrs[key] = value
            last = pair is None or (self._static_final() and plan.free in ([], [pair]))
        if last and scan.n_waiting == 0:
            # No thread should ask for one trial too many: stop now; the running trials still
            # finish (a driver treats a stop from inside ``ask`` as the sampler's, too).
            _stop(study)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            trial_id = optuna_adapter.trial_id_of(trial)
            self._ended[trial_id] = (state, values[0] if values else None)
            scan, plan = self._look(study)
            self._finished.notify_all()
        if state == TrialState.FAIL:
            # A failure may be retried (the driver's ``retry_lost_trials``,
            # ``RetryFailedTrialCallback``), which enqueues the retry only after this call.
            # Without a retry the study still ends: a driver once nothing runs, and
            # ``Study.optimize`` already stopped when the last (arm, repeat) went out.
            return
        if scan.n_waiting == 0 and not plan.free and not scan.running & self._mine:
            _stop(study)

    # -----------------------------------------------------------------------------------------
    # Internals.

    def _look(self, study: Study) -> tuple[StudyScan, _Plan]:
        """The study's pairs, and what the policy and the repeats allow to run now."""
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        scan = scan_trials(storage.get_all_trials(study_id, deepcopy=False), self._ended)
        self._keep_recorded_seeds(scan.seeds)
        if self._static is not None:
            arms = self._static
        else:
            history = self._history(study, scan)
            recorded = dict(history.memory)
            arms = self._checked(self._policy.arms(history))
            for key, value in history.memory.items():  # what the policy decided: kept
                if recorded.get(key, _UNSET) != value:
                    storage.set_study_system_attr(study_id, a.SYS_MEMORY + key, value)
        wanted = (
            self._adaptive_wanted(study, scan, arms)
            if self._adaptive_repeats
            else dict.fromkeys(arms, self._high)
        )
        free = [
            (label, r)
            for r in range(self._high)
            for label in arms
            if r < wanted[label] and (label, r) not in scan.taken
        ]
        adaptive = self._adaptive_repeats or self._static is None
        must_wait = adaptive and not free and bool(scan.running & self._mine)
        return scan, _Plan(arms, free, must_wait)

    def _check_direction(self, study: Study) -> None:
        """An ablation path of a maximized study must run in a maximized study (and so on)."""
        wanted = self._policy.direction
        if self._direction_checked or wanted is None:
            return
        actual = "minimize" if study.directions[0] == StudyDirection.MINIMIZE else "maximize"
        if len(study.directions) > 1 or actual != wanted:
            raise ValueError(
                f"{type(self._policy).__name__} compares results to {wanted} them, but the "
                f"study's direction is {actual}: create it with direction={wanted!r}."
            )
        self._direction_checked = True

    def _static_final(self) -> bool:
        return self._static is not None and not self._adaptive_repeats

    def _history(self, study: Study, scan: StudyScan) -> AblationHistory:
        values: dict[str, dict[int, float]] = {}
        for (label, repeat), value in scan.values.items():
            values.setdefault(label, {})[repeat] = value
        n_finished: dict[str, int] = {}
        for label, _ in scan.finished:
            n_finished[label] = n_finished.get(label, 0) + 1
        n_running: dict[str, int] = {}
        for label, _ in scan.taken - scan.finished:
            n_running[label] = n_running.get(label, 0) + 1
        minimize = study.directions[0] == StudyDirection.MINIMIZE
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        memory = {
            key[len(a.SYS_MEMORY) :]: value
            for key, value in storage.get_study_system_attrs(study_id).items()
            if key.startswith(a.SYS_MEMORY)
        }
        return AblationHistory(minimize, values, n_finished, n_running, self._high, memory)

    def _adaptive_wanted(
        self, study: Study, scan: StudyScan, arms: Mapping[str, ArmSpec]
    ) -> dict[str, int]:
        """Repeats each arm may have now: while undecided, enough for its next look.

        An undecided arm gets the repeats its next look needs (plus one for each repeat of it
        or of the reference that failed), never more: repeats beyond a look would run after a
        decision that may stop the arm. The reference gets as many as the arm that has most.
        """
        reference = str(self._policy.reference)
        points = seq.look_points(self._low, self._high)
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        recorded = storage.get_study_system_attrs(study_id)
        by_arm: dict[str, dict[int, float]] = {}
        for (lb, r), v in scan.values.items():
            by_arm.setdefault(lb, {})[r] = v
        n_taken_of: dict[str, int] = {}
        for lb, r in scan.taken:
            n_taken_of[lb] = max(n_taken_of.get(lb, 0), r + 1)
        ref_values = by_arm.get(reference, {})
        others = [lb for lb in arms if lb != reference]
        wanted: dict[str, int] = {}
        for label in others:
            n_taken = n_taken_of.get(label, 0)
            key = a.SYS_DECISION + label
            if key in recorded:
                wanted[label] = n_taken
                continue
            values = by_arm.get(label, {})
            d = seq.paired_differences(values, ref_values)
            settled = n_taken >= self._high and all(
                (lb, r) in scan.finished for lb in (label, reference) for r in range(self._high)
            )
            decision = seq.decide(
                d,
                low=self._low,
                high=self._high,
                alpha=self._alpha,
                n_arms=len(others),
                min_effect=self._min_effect,
                futility=self._futility,
                settled=settled,
            )
            if decision is not None:
                storage.set_study_system_attr(study_id, key, decision.to_attr())
                wanted[label] = n_taken
            else:
                lost = sum(
                    1
                    for r in range(n_taken)
                    if (label, r) in scan.finished
                    and (reference, r) in scan.finished
                    and (r not in values or r not in ref_values)
                )
                look = next((p for p in points if p > len(d)), self._high)
                wanted[label] = min(self._high, look + lost)
        taken_ref = n_taken_of.get(reference, 0)
        wanted[reference] = max([self._low if others else 0, taken_ref, *wanted.values()])
        return wanted

    def _checked(self, specs: Sequence[ArmSpec]) -> dict[str, ArmSpec]:
        """The policy's arms by label, checked against the catalog and what it said before."""
        arms: dict[str, ArmSpec] = {}
        for spec in specs:
            if not isinstance(spec, ArmSpec):
                raise TypeError(
                    f"{type(self._policy).__name__}.arms() must return ArmSpec objects, but "
                    f"returned {spec!r}."
                )
            if spec.label in arms:
                raise ValueError(
                    f"{type(self._policy).__name__}.arms() returned the label {spec.label!r} "
                    "twice; each arm needs its own label."
                )
            if spec.params is None:
                self._policy.catalog.check(spec)
            known = self._known.get(spec.label)
            if known is not None and known != spec:
                raise ValueError(
                    f"{type(self._policy).__name__}.arms() changed arm {spec.label!r} from "
                    f"{known} to {spec}; an arm's label must keep meaning the same arm."
                )
            arms[spec.label] = spec
        missing = [lb for lb in self._known if lb not in arms]
        if missing:
            raise ValueError(
                f"{type(self._policy).__name__}.arms() no longer returns {missing}; a policy "
                "must keep returning the arms it returned before."
            )
        if not arms:
            raise ValueError(f"{type(self._policy).__name__}.arms() returned no arm to run.")
        self._known.update(arms)
        return arms

    def _keep_recorded_seeds(self, recorded: Mapping[int, int]) -> None:
        """Use the seeds the study already ran with, so that a resumed study stays paired."""
        for repeat, seed in recorded.items():
            if repeat < self._high and seed != self._seeds[repeat] and self._seed is not None:
                _logger.warning(
                    "The study already ran repeat %d with seed %d; the sampler (seed=%d) keeps "
                    "using it (instead of %d) so that arms stay paired.",
                    repeat,
                    seed,
                    self._seed,
                    self._seeds[repeat],
                )
                self._seeds[repeat] = seed

    def _choose(
        self, number: int, plan: _Plan, taken: set[Pair], fixed: Mapping[str, Any]
    ) -> Pair | None:
        want_arm = fixed.get(a.PARAM_ARM)
        want_repeat = fixed.get(a.PARAM_REPEAT)
        if want_arm is not None and want_arm not in self._known:
            _logger.warning(
                "Trial %d was enqueued with %s=%r, which is not an arm of this sampler (%s).",
                number,
                a.PARAM_ARM,
                want_arm,
                list(self._known),
            )
            want_arm = None
        if want_repeat is not None and not (
            isinstance(want_repeat, (int, np.integer)) and 0 <= want_repeat < self._high
        ):
            _logger.warning(
                "Trial %d was enqueued with %s=%r, which is not a repeat of this sampler.",
                number,
                a.PARAM_REPEAT,
                want_repeat,
            )
            want_repeat = None
        if want_arm is None and want_repeat is None:
            return plan.free[0] if plan.free else None
        every = [(lb, r) for r in range(self._high) for lb in self._known]
        return choose_pair(every, taken, want_arm, want_repeat)

    def _log_surplus(self, number: int, scan: StudyScan, stopping: bool) -> None:
        if not scan.running and not stopping:  # optimized again once finished
            _logger.warning(
                "Trial %d is pruned without running: this ablation study has already run "
                "every (arm, repeat). Use a new sampler (more repeats, other arms) to run more.",
                number,
            )
        else:
            # Another thread took the last arm between this thread's check of the stop flag
            # and its ask, or the study ended while it waited; the trial ends at once,
            # without running anything.
            _logger.info(
                "Trial %d is pruned without running: every (arm, repeat) has been handed out.",
                number,
            )

    def _user_attrs(self, spec: ArmSpec, repeat: int, seed: int) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            a.ATTR_ARM: spec.label,
            a.ATTR_KIND: spec.kind,
            a.ATTR_NAME: _name(spec),
            **self._policy.catalog.record(spec),
            a.ATTR_REPEAT: repeat,
            a.ATTR_SEED: seed,
            a.ATTR_N_REPEATS: self._high,
            a.ATTR_REFERENCE: self._policy.reference,
            a.ATTR_MODE: self._policy.mode,
        }
        if self._static is not None:
            attrs[a.ATTR_ARMS] = list(self._static)
        if self._adaptive_repeats:
            attrs[a.ATTR_ADAPTIVE] = [self._low, self._high]
        if spec.params is not None:
            attrs[a.ATTR_PARAMS] = dict(spec.params)
        return attrs

    def _distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {a.PARAM_REPEAT: IntDistribution(0, self._high - 1)}
        if self._static is not None:
            out[a.PARAM_ARM] = CategoricalDistribution(tuple(self._static))
        return out


def _name(spec: ArmSpec) -> str:
    """A single-component arm's component (``"area"``); the base's and others' label."""
    if spec.kind in a.KINDS[1:] and len(spec.left_out) == 1:
        return spec.left_out[0]
    return spec.label


_UNSET = object()


def _empty(sampler: AblationSampler) -> AblationHistory:
    return AblationHistory(True, {}, {}, {}, sampler._high, {})


def _check_adaptive_repeats(
    policy: AblationPolicy, alpha: float, min_effect: float | None
) -> None:
    if policy.adaptive or policy.reference is None:
        raise ValueError(
            f"Adaptive n_repeats=(low, high) needs a policy whose arms are known in advance and "
            f"compared with a reference arm, which {type(policy).__name__} is not; give an int."
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha=}.")
    if min_effect is not None and not (math.isfinite(min_effect) and min_effect > 0):
        raise ValueError(f"min_effect must be a positive number or None, but got {min_effect=}.")
    import_ablation_dependency("scipy.stats")  # the decisions' t-tests: fail before any work


def _stop(study: Study) -> None:
    """``study.stop()`` where it is allowed (inside an optimize loop); a no-op elsewhere."""
    # HyperbandPruner hands samplers a per-bracket view of the study; its stop() stops the
    # study itself.
    with contextlib.suppress(RuntimeError):  # not in an optimize loop: nothing to stop
        study.stop()
