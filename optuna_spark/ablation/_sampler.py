"""``LOCOSampler``: a leave-one-component-out ablation, as the search space of an Optuna study."""

from __future__ import annotations

import contextlib
import logging
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
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._arm_specs import arm_specs
from optuna_spark.ablation._arm_specs import check_repeats_and_seed
from optuna_spark.ablation._pairs import Pair
from optuna_spark.ablation._pairs import StudyScan
from optuna_spark.ablation._pairs import assigned_value
from optuna_spark.ablation._pairs import choose_pair
from optuna_spark.ablation._pairs import repeat_seeds
from optuna_spark.ablation._pairs import scan_trials

if TYPE_CHECKING:
    from optuna.study import Study

_logger = logging.getLogger(__name__)


class LOCOSampler(BaseSampler):
    """Leave-one-component-out ablation: each trial runs one arm, each arm ``n_repeats`` times.

    The arms are the base configuration (nothing left out) and one arm per feature, Keras
    layer, group of layers and named component. Each (arm, repeat) is handed out exactly once,
    repeat by repeat, and the study stops by itself when all have run. Repeat ``r`` of every
    arm gets the same seed (arms are *paired*), so that :func:`ablation_report` can compare
    each arm with the base seed by seed.

    The sampler keeps its state in the study's storage, like
    :class:`~optuna.samplers.GridSampler`: ``before_trial`` records the assignment in the
    trial's system attributes, and in its user attributes (``loco_arm``, ``loco_kind``,
    ``loco_name``, ``loco_repeat``, ``loco_seed``, ...) where optuna-dashboard and
    ``trials_dataframe()`` show it. An (arm, repeat) is taken as soon as a trial holding it runs,
    whatever that trial's outcome (a failed arm is not re-run; the report counts the trials
    that completed).

    Exactness: assignment is serialized by a lock, so one process hands out each (arm, repeat)
    once, with ``study.optimize(..., n_jobs=k)`` as well as on Spark through
    :class:`optuna_spark.SparkExecutor` (whose driver asks for every trial, and consults
    :meth:`is_exhausted` first). In plain ``study.optimize`` the sampler calls ``study.stop()``
    as soon as the last (arm, repeat) is handed out; the running trials still finish. A thread
    that was already asking for a trial at that moment gets a *surplus* trial, which runs
    nothing: :func:`get_arm` raises ``optuna.TrialPruned`` (user attribute ``loco_surplus``), so
    it ends at once as PRUNED without a ``loco_arm``. The same happens when a finished
    ablation study is optimized again. Several processes that share a storage, each with its
    own sampler, may occasionally run an (arm, repeat) twice, as with ``GridSampler``; so may
    a trial enqueued with its ``loco_arm`` and ``loco_repeat`` (a retry), which is run as asked
    and marked ``loco_duplicate``.

    The objective reads its arm with :func:`get_arm` (which also suggests the ``loco_arm`` and
    ``loco_repeat`` parameters, so the arm is one of the trial's params) and builds its data
    and model with :func:`ablate_data` and :func:`ablate_model`. It should suggest nothing
    else: the point of an ablation is that everything but the left-out component stays fixed.

    Args:
        features: Input features to leave out, one arm each.
        layers: Names of Keras layers to leave out, one arm each.
        layer_groups: Groups of layers left out together, one arm each: a mapping from the
            group's name to a list of layer names (an entry ending in ``*`` matches every layer
            whose name starts with what precedes it), or to a single string, a name prefix.
        components: Any other named components the objective can switch off (a data
            augmentation, a loss term, a trick), one arm each; see :func:`is_enabled`.
        n_repeats: How many times each arm runs, with seeds shared across arms.
        include_base: Whether to run the base arm (nothing left out). Without it the report
            cannot compare the arms with the base.
        seed: Seed from which the repeats' seeds derive. ``None`` draws one at random (give a
            seed to reproduce a study).

    Example:

        .. testcode::

            import numpy as np
            import optuna
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import ablation_report
            from optuna_spark.ablation import get_arm

            EFFECTS = {"area": 3.0, "rooms": 1.0, "noise": 0.0}


            def objective(trial):
                arm = get_arm(trial)
                rng = np.random.default_rng(arm.seed)
                loss = 1.0 + EFFECTS.get(arm.feature or "", 0.0)
                return loss + rng.normal(0.0, 0.1)


            sampler = LOCOSampler(features=["area", "rooms", "noise"], n_repeats=3, seed=1)
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective)  # ends by itself after 4 arms x 3 repeats
            report = ablation_report(study)
            assert list(report["arm"])[:3] == ["base", "feature:area", "feature:rooms"]
    """

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
        n_repeats: int = 1,
        include_base: bool = True,
        seed: int | None = None,
    ) -> None:
        n_repeats, seed = check_repeats_and_seed(n_repeats, seed)
        self._specs = arm_specs(
            features=features,
            layers=layers,
            layer_groups=layer_groups,
            components=components,
            include_base=include_base,
        )
        self._labels = tuple(self._specs)
        self._n_repeats = n_repeats
        self._pairs: list[Pair] = [(lb, r) for r in range(self._n_repeats) for lb in self._labels]
        self._pair_set = frozenset(self._pairs)
        self._seed = seed
        self._seeds = repeat_seeds(self._seed, self._n_repeats)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[Any, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -----------------------------------------------------------------------------------------
    # Public.

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms' labels in hand-out order: ``"base"``, ``"feature:area"``, ..."""
        return self._labels

    @property
    def n_repeats(self) -> int:
        """How many times each arm runs."""
        return self._n_repeats

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seed of each repeat (the same for every arm)."""
        return tuple(self._seeds)

    @property
    def n_trials(self) -> int:
        """How many trials the ablation takes: arms times repeats."""
        return len(self._pairs)

    def is_exhausted(self, study: Study) -> bool:
        """Whether every (arm, repeat) has been handed out (running or finished).

        A driver that hands out trials one at a time (such as :class:`optuna_spark.SparkExecutor`)
        asks this before each trial and stops handing out trials once it is ``True``. A trial
        waiting in the queue (``enqueue_trial``, a retry) keeps it ``False`` until it starts.
        """
        scan = self._scan(study)
        return scan.n_waiting == 0 and len(scan.taken) == len(self._pair_set)

    def fixed_trial(self, arm: str = a.BASE, repeat: int = 0) -> FrozenTrial:
        """A trial of ``arm`` and ``repeat`` to run an objective by hand, without a study.

        Args:
            arm: An arm's label, as in :attr:`arms` (``"base"``, ``"feature:area"``, ...).
            repeat: The repeat, from 0 to ``n_repeats - 1``.

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
        if arm not in self._specs:
            raise ValueError(f"Unknown arm {arm!r}; the arms are {list(self._labels)}.")
        if isinstance(repeat, bool) or not 0 <= repeat < self._n_repeats:
            raise ValueError(f"repeat must be in [0, {self._n_repeats - 1}], but got {repeat=}.")
        return optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params={a.PARAM_ARM: arm, a.PARAM_REPEAT: repeat},
            distributions=self._distributions(),
            user_attrs=self._user_attrs(arm, repeat, self._seeds[repeat]),
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
        if a.SYS_ARM in system_attrs or a.SYS_SURPLUS in system_attrs:
            return
        fixed = {**system_attrs.get("fixed_params", {}), **trial.params}
        storage = optuna_adapter.storage_of(study)
        trial_id = optuna_adapter.trial_id_of(trial)
        with self._lock:
            # Reading what is taken and recording this trial's pair happen under one lock, so
            # that two threads of this process never take the same pair.
            scan = self._scan(study)
            pair = self._choose(trial.number, scan.taken, fixed)
            if pair is None:
                user_attrs: dict[str, Any] = {a.ATTR_SURPLUS: True}
                storage.set_trial_system_attr(trial_id, a.SYS_SURPLUS, True)
                self._log_surplus(trial.number, scan)
            else:
                label, repeat = pair
                seed = int(scan.seeds.get(repeat, self._seeds[repeat]))
                storage.set_trial_system_attr(trial_id, a.SYS_REPEAT, repeat)
                storage.set_trial_system_attr(trial_id, a.SYS_SEED, seed)
                # The arm last: a reader that sees it (without the lock) sees the rest.
                storage.set_trial_system_attr(trial_id, a.SYS_ARM, label)
                user_attrs = self._user_attrs(label, repeat, seed)
                if pair in scan.taken:
                    user_attrs[a.ATTR_DUPLICATE] = True
            for key, value in user_attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
                # ``optuna.Trial.user_attrs`` reads the frozen trial it passed us, not the
                # storage; without this the objective would not see its arm.
                trial.user_attrs[key] = value
            all_started = pair is None or len(scan.taken | {pair}) == len(self._pair_set)
        if all_started and scan.n_waiting == 0:
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
        if state == TrialState.FAIL:
            # A failure may be retried (the driver's ``retry_lost_trials``,
            # ``RetryFailedTrialCallback``), which enqueues the retry only after this call.
            # Without a retry the study still ends: a driver once nothing runs, and
            # ``Study.optimize`` already stopped when the last (arm, repeat) went out.
            return
        scan = self._scan(study)
        label = trial.system_attrs.get(a.SYS_ARM)
        if label is not None:
            scan.finished.add((label, int(trial.system_attrs[a.SYS_REPEAT])))  # not yet stored
        if scan.n_waiting == 0 and self._pair_set <= scan.finished:
            _stop(study)

    # -----------------------------------------------------------------------------------------
    # Internals.

    def _scan(self, study: Study) -> StudyScan:
        """Pairs taken by a running or finished trial, and other facts of the study."""
        storage, study_id = optuna_adapter.storage_of(study), optuna_adapter.study_id_of(study)
        scan = scan_trials(storage.get_all_trials(study_id, deepcopy=False), self._pair_set)
        self._keep_recorded_seeds(scan.seeds)
        return scan

    def _keep_recorded_seeds(self, recorded: Mapping[int, int]) -> None:
        """Use the seeds the study already ran with, so that a resumed study stays paired."""
        for repeat, seed in recorded.items():
            if repeat < self._n_repeats and seed != self._seeds[repeat] and self._seed is not None:
                _logger.warning(
                    "The study already ran repeat %d with seed %d; LOCOSampler(seed=%d) keeps "
                    "using it (instead of %d) so that arms stay paired.",
                    repeat,
                    seed,
                    self._seed,
                    self._seeds[repeat],
                )
                self._seeds[repeat] = seed

    def _choose(self, number: int, taken: set[Pair], fixed: Mapping[str, Any]) -> Pair | None:
        want_arm = fixed.get(a.PARAM_ARM)
        want_repeat = fixed.get(a.PARAM_REPEAT)
        if want_arm is not None and want_arm not in self._specs:
            _logger.warning(
                "Trial %d was enqueued with %s=%r, which is not an arm of this sampler (%s).",
                number,
                a.PARAM_ARM,
                want_arm,
                list(self._labels),
            )
            want_arm = None
        if want_repeat is not None and not (
            isinstance(want_repeat, (int, np.integer)) and 0 <= want_repeat < self._n_repeats
        ):
            _logger.warning(
                "Trial %d was enqueued with %s=%r, which is not a repeat of this sampler.",
                number,
                a.PARAM_REPEAT,
                want_repeat,
            )
            want_repeat = None
        return choose_pair(self._pairs, taken, want_arm, want_repeat)

    def _log_surplus(self, number: int, scan: StudyScan) -> None:
        if scan.finished == self._pair_set:
            _logger.warning(
                "Trial %d is pruned without running: this LOCO study has already run every "
                "(arm, repeat). Use a new LOCOSampler (more repeats, other arms) to run more.",
                number,
            )
        else:
            # Another thread took the last arm between this thread's check of the stop flag
            # and its ask; the trial ends at once, without running anything.
            _logger.info(
                "Trial %d is pruned without running: every (arm, repeat) has been handed out.",
                number,
            )

    def _user_attrs(self, label: str, repeat: int, seed: int) -> dict[str, Any]:
        kind, name, removes = self._specs[label]
        return a.user_attrs_for(kind, name, removes, repeat, seed, self._labels, self._n_repeats)

    def _distributions(self) -> dict[str, BaseDistribution]:
        return {
            a.PARAM_ARM: CategoricalDistribution(self._labels),
            a.PARAM_REPEAT: IntDistribution(0, self._n_repeats - 1),
        }


def _stop(study: Study) -> None:
    """``study.stop()`` where it is allowed (inside an optimize loop); a no-op elsewhere."""
    # HyperbandPruner hands samplers a per-bracket view of the study; its stop() stops the
    # study itself.
    with contextlib.suppress(RuntimeError):  # not in an optimize loop: nothing to stop
        study.stop()
