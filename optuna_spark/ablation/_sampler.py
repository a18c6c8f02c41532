"""``AblationSampler``: runs an :class:`AblationPolicy` as the search space of an Optuna study.

The sampler serializes the hand-out under its lock; :class:`~._planner.Planner` reads the
study and plans what may run now, ``_trial_records`` writes the pair on the trial.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._handout import Availability
from optuna_spark._waiting import may_wait
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._arm_specs import check_repeats
from optuna_spark.ablation._arm_specs import check_seed
from optuna_spark.ablation._pairs import Pair
from optuna_spark.ablation._pairs import StudyScan
from optuna_spark.ablation._pairs import assigned_value
from optuna_spark.ablation._plan import Plan
from optuna_spark.ablation._plan import RepeatRule
from optuna_spark.ablation._plan import availability_of
from optuna_spark.ablation._planner import Planner
from optuna_spark.ablation._policy import AblationPolicy
from optuna_spark.ablation._sampler_checks import check_direction
from optuna_spark.ablation._sampler_checks import check_policy
from optuna_spark.ablation._sampler_checks import check_rule
from optuna_spark.ablation._scan_cache import ScanCache
from optuna_spark.ablation._trial_records import distributions
from optuna_spark.ablation._trial_records import log_surplus
from optuna_spark.ablation._trial_records import record_pair
from optuna_spark.ablation._trial_records import record_surplus
from optuna_spark.ablation._trial_records import set_user_attrs
from optuna_spark.ablation._trial_records import user_attrs

if TYPE_CHECKING:
    from optuna.study import Study

#: How long a thread waiting for a running trial re-reads the storage at the latest (trials of
#: this process wake it at once; this is for trials finished by another process).
_POLL = 1.0


class AblationSampler(BaseSampler):
    """Runs an ablation policy: each of its arms ``n_repeats`` times, with paired seeds.

    Each (arm, repeat) is handed out exactly once, repeat by repeat, and the study stops by
    itself when the policy has nothing more to run; :class:`LOCOSampler` describes these
    guarantees (it is this sampler with the leave-one-out policy). Repeat ``r`` of every arm
    gets the same seed, so arms are compared seed by seed.

    :meth:`availability` says whether a trial asked for now would get an (arm, repeat), would
    have to wait for a running trial's result, or whether the ablation is done, so that a
    driver asking for many workers knows when to hand out, hold back or stop.

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
        low, high = check_repeats(n_repeats)
        rule = RepeatRule(low, high, alpha, min_effect, futility)
        check_rule(check_policy(policy), rule)
        self._planner = Planner(policy, rule, check_seed(seed))
        self._direction_checked = False
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._mine: set[int] = set()  # trials this sampler object handed out (in this process)
        self._ended: dict[int, tuple[TrialState, float | None]] = {}  # told, maybe not stored
        self._scans = ScanCache()

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
        return self._planner.policy

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms' labels in hand-out order (those known so far, for an adaptive policy)."""
        return tuple(self._planner.static or self._planner.known)

    @property
    def n_repeats(self) -> int | tuple[int, int]:
        """How many times each arm runs: an int, or ``(low, high)`` for adaptive repeats."""
        rule = self._planner.rule
        return (rule.low, rule.high) if rule.adaptive else rule.high

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seed of each repeat (the same for every arm)."""
        return tuple(self._planner.seeds)

    @property
    def n_trials(self) -> int:
        """How many trials the known arms take at most: arms times (the most) repeats."""
        return len(self.arms) * self._planner.rule.high

    def availability(self, study: Study) -> Availability:
        """What a trial asked for now would get, from one read of the study's trials.

        ``READY``: a free (arm, repeat), or a trial waiting in the queue (``study.ask()``
        hands that out first). ``WAIT``: nothing is free, but a running trial's result decides
        what runs next (an adaptive policy or adaptive repeats). ``EXHAUSTED``: every (arm,
        repeat) has been handed out and the policy adds nothing more. A driver that asks for
        many workers (:class:`optuna_spark.SparkExecutor`) asks this before each trial; the
        ``study.ask()`` that follows in the same thread reuses what it read.

        Args:
            study: The ablation study.

        Returns:
            The study's :class:`~optuna_spark._handout.Availability`.
        """
        with self._lock:
            scan, plan = self._look(study)
            self._scans.keep(study, scan, plan)
        return availability_of(scan, plan)

    def is_exhausted(self, study: Study) -> bool:
        """Whether nothing more will be handed out: every (arm, repeat) is running or finished,
        and the policy will add nothing (nothing of an adaptive one still runs).

        The same as ``availability(study) is Availability.EXHAUSTED``. A trial waiting in the
        queue keeps it ``False``.
        """
        return self.availability(study) is Availability.EXHAUSTED

    def must_wait(self, study: Study) -> bool:
        """Whether a trial asked for now would have to wait for a running trial to finish.

        That happens with an adaptive policy or adaptive repeats, when what comes next depends
        on results not in yet. The same as ``availability(study) is Availability.WAIT``.
        """
        return self.availability(study) is Availability.WAIT

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
        planner = self._planner
        high = planner.rule.high
        if arm not in planner.known:
            raise ValueError(f"Unknown arm {arm!r}; the arms are {list(self.arms)}.")
        if isinstance(repeat, bool) or not 0 <= repeat < high:
            raise ValueError(f"repeat must be in [0, {high - 1}], but got {repeat=}.")
        spec = planner.known[arm]
        params: dict[str, Any] = {a.PARAM_REPEAT: repeat}
        if planner.static is not None:
            params[a.PARAM_ARM] = arm
        return optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params=params,
            distributions=distributions(high, planner.static_labels),
            user_attrs=self._user_attrs(spec, (arm, repeat), planner.seeds[repeat]),
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
        self._check_direction(study)
        system_attrs = trial.system_attrs
        if a.SYS_ARM in system_attrs or a.SYS_SURPLUS in system_attrs:
            if a.SYS_ARM in system_attrs:  # a retry that carries its pair: ours to wait for
                with self._lock:
                    self._mine.add(optuna_adapter.trial_id_of(trial))
                    self._scans.changed()
            return
        fixed = {**system_attrs.get("fixed_params", {}), **trial.params}
        with self._lock:
            # Reading what is taken and recording this trial's pair happen under one lock, so
            # that two threads of this process never take the same pair.
            scan, plan, pair = self._pick(study, trial.number, fixed)
            self._hand_out(study, trial, scan, plan, pair)
            self._scans.changed()
        last = pair is None or (self._planner.static_final and plan.free in ([], [pair]))
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
            self._scans.changed()
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
    # Internals (called under the lock).

    def _pick(
        self, study: Study, number: int, fixed: Mapping[str, Any]
    ) -> tuple[StudyScan, Plan, Pair | None]:
        """The pair for trial ``number``, after waiting for results where allowed.

        Starts from the look that :meth:`availability` made in this thread for this trial,
        when it still holds; reads the study again otherwise, and after each wait.
        """
        kept = self._scans.take(study, number)
        scan, plan = kept if kept is not None else self._look(study)
        while True:
            pair = self._planner.choose(number, plan, scan.taken, fixed)
            if (
                pair is not None
                or not plan.must_wait
                or scan.n_waiting
                or not may_wait()  # a driver parks its workers' asks itself
                or optuna_adapter.stop_requested(study)
            ):
                return scan, plan, pair
            self._finished.wait(_POLL)  # for a running trial whose result decides
            scan, plan = self._look(study)

    def _hand_out(
        self, study: Study, trial: FrozenTrial, scan: StudyScan, plan: Plan, pair: Pair | None
    ) -> None:
        """Record ``pair`` on the trial (or that it is a surplus one), for the objective too."""
        storage = optuna_adapter.storage_of(study)
        if pair is None:
            attrs = record_surplus(storage, trial)
            stopping = optuna_adapter.stop_requested(study)
            log_surplus(trial.number, running=bool(scan.running), stopping=stopping)
        else:
            label, repeat = pair
            spec = plan.arms.get(label) or self._planner.known[label]
            seed = int(scan.seeds.get(repeat, self._planner.seeds[repeat]))
            record_pair(storage, trial, pair, spec, seed)
            self._mine.add(optuna_adapter.trial_id_of(trial))
            attrs = self._user_attrs(spec, pair, seed)
            if pair in scan.taken:
                attrs[a.ATTR_DUPLICATE] = True
        set_user_attrs(storage, trial, attrs)

    def _check_direction(self, study: Study) -> None:
        if not self._direction_checked:
            check_direction(self._planner.policy, study)
            self._direction_checked = True

    def _look(self, study: Study) -> tuple[StudyScan, Plan]:
        return self._planner.look(study, self._ended, self._mine)

    def _user_attrs(self, spec: ArmSpec, pair: Pair, seed: int) -> dict[str, Any]:
        planner = self._planner
        return user_attrs(
            planner.policy, spec, pair, seed, rule=planner.rule, arms=planner.static_labels
        )


def _stop(study: Study) -> None:
    """``study.stop()`` where it is allowed (inside an optimize loop); a no-op elsewhere."""
    # HyperbandPruner hands samplers a per-bracket view of the study; its stop() stops the
    # study itself.
    with contextlib.suppress(RuntimeError):  # not in an optimize loop: nothing to stop
        study.stop()
