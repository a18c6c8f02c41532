"""``LOCOSampler``: a leave-one-component-out ablation, as the search space of an Optuna study."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterable
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

from optuna_spark.ablation import _arms as a

if TYPE_CHECKING:
    from optuna.study import Study

_logger = logging.getLogger(__name__)

_Pair = tuple[str, int]  # (arm label, repeat)


@dataclasses.dataclass
class _Scan:
    taken: set[_Pair]  # by a running or finished trial
    finished: set[_Pair]
    seeds: dict[int, int]  # repeat -> seed already recorded in the study
    n_waiting: int


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
        if isinstance(n_repeats, bool) or not isinstance(n_repeats, (int, np.integer)):
            raise TypeError(f"n_repeats must be an int, but got {n_repeats=}.")
        if n_repeats < 1:
            raise ValueError(f"n_repeats must be at least 1, but got {n_repeats=}.")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        ):
            raise TypeError(f"seed must be an int or None, but got {seed=}.")

        specs: list[tuple[str, str, tuple[str, ...]]] = []  # (kind, name, removes)
        specs += [(a.KIND_FEATURE, n, (n,)) for n in _names("features", features)]
        specs += [(a.KIND_LAYER, n, (n,)) for n in _names("layers", layers)]
        specs += [(a.KIND_GROUP, n, p) for n, p in _groups(layer_groups).items()]
        specs += [(a.KIND_COMPONENT, n, (n,)) for n in _names("components", components)]
        if not specs:
            raise ValueError(
                "LOCOSampler needs at least one feature, layer, layer group or component to "
                "leave out."
            )
        seen: dict[str, str] = {}
        for kind, name, _ in specs:
            if name in seen:
                raise ValueError(
                    f"{name!r} is ablated twice, as a {seen[name]} and as a {kind}; names must "
                    "be unique across features, layers, layer groups and components."
                )
            seen[name] = kind
        if include_base:
            specs.insert(0, (a.KIND_BASE, a.BASE, ()))

        self._specs = {
            a.arm_label(kind, name): (kind, name, removes) for kind, name, removes in specs
        }
        self._labels = tuple(self._specs)
        self._n_repeats = int(n_repeats)
        self._pairs: list[_Pair] = [(lb, r) for r in range(self._n_repeats) for lb in self._labels]
        self._pair_set = frozenset(self._pairs)
        self._seed = None if seed is None else int(seed)
        self._seeds = _repeat_seeds(self._seed, self._n_repeats)
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
        system_attrs = trial.system_attrs
        if a.SYS_SURPLUS in system_attrs:
            raise optuna.TrialPruned(a.SURPLUS_MESSAGE)
        if a.SYS_ARM not in system_attrs:
            raise ValueError(
                f"Trial {trial.number} has no LOCO assignment: every parameter must be given "
                "when a trial of a LOCOSampler study is enqueued."
            )
        if param_name == a.PARAM_ARM:
            value: Any = system_attrs[a.SYS_ARM]
        elif param_name == a.PARAM_REPEAT:
            value = system_attrs[a.SYS_REPEAT]
        else:
            raise ValueError(
                f"LOCOSampler only samples {a.PARAM_ARM!r} and {a.PARAM_REPEAT!r}, but the "
                f"objective suggested {param_name!r}. Keep every other parameter fixed in an "
                "ablation (or enqueue it with study.enqueue_trial)."
            )
        try:
            internal = param_distribution.to_internal_repr(value)
            contained = param_distribution._contains(internal)
        except ValueError:
            contained = False
        if not contained:
            raise ValueError(
                f"The LOCO assignment {param_name}={value!r} is not in the suggested "
                f"distribution {param_distribution}; suggest it with get_arm(trial)."
            )
        return value

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        system_attrs = trial.system_attrs
        if a.SYS_ARM in system_attrs or a.SYS_SURPLUS in system_attrs:
            return
        fixed = {**system_attrs.get("fixed_params", {}), **trial.params}
        storage = study._storage
        with self._lock:
            # Reading what is taken and recording this trial's pair happen under one lock, so
            # that two threads of this process never take the same pair.
            scan = self._scan(study)
            pair = self._choose(trial.number, scan.taken, fixed)
            if pair is None:
                user_attrs: dict[str, Any] = {a.ATTR_SURPLUS: True}
                storage.set_trial_system_attr(trial._trial_id, a.SYS_SURPLUS, True)
                self._log_surplus(trial.number, scan)
            else:
                label, repeat = pair
                seed = int(scan.seeds.get(repeat, self._seeds[repeat]))
                storage.set_trial_system_attr(trial._trial_id, a.SYS_REPEAT, repeat)
                storage.set_trial_system_attr(trial._trial_id, a.SYS_SEED, seed)
                # The arm last: a reader that sees it (without the lock) sees the rest.
                storage.set_trial_system_attr(trial._trial_id, a.SYS_ARM, label)
                user_attrs = self._user_attrs(label, repeat, seed)
                if pair in scan.taken:
                    user_attrs[a.ATTR_DUPLICATE] = True
            for key, value in user_attrs.items():
                storage.set_trial_user_attr(trial._trial_id, key, value)
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

    def _scan(self, study: Study) -> _Scan:
        """Pairs taken by a running or finished trial, and other facts of the study."""
        scan = _Scan(set(), set(), {}, 0)
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if t.state == TrialState.WAITING:
                scan.n_waiting += 1
                continue
            label = t.system_attrs.get(a.SYS_ARM)
            repeat = t.system_attrs.get(a.SYS_REPEAT)
            if label is None or repeat is None:
                continue
            repeat = int(repeat)
            if (label, repeat) in self._pair_set:
                scan.taken.add((label, repeat))
                if t.state.is_finished():
                    scan.finished.add((label, repeat))
            seed = t.system_attrs.get(a.SYS_SEED)
            if seed is not None:
                scan.seeds.setdefault(repeat, int(seed))
        for repeat, seed in scan.seeds.items():
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
        return scan

    def _choose(self, number: int, taken: set[_Pair], fixed: Mapping[str, Any]) -> _Pair | None:
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
        candidates = [
            (label, repeat)
            for label, repeat in self._pairs
            if (want_arm is None or label == want_arm)
            and (want_repeat is None or repeat == want_repeat)
        ]
        for pair in candidates:
            if pair not in taken:
                return pair
        if want_arm is None and want_repeat is None:
            return None  # nothing left to run
        return candidates[0]  # an explicit request (a retry): run it again

    def _log_surplus(self, number: int, scan: _Scan) -> None:
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


def _names(arg: str, names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError(
            f"{arg} must be a sequence of names, not a string; did you mean {arg}=[{names!r}]?"
        )
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{arg} must hold non-empty strings, but got {name!r}.")
        if name in out:
            raise ValueError(f"{arg} lists {name!r} twice.")
        out.append(name)
    return tuple(out)


def _groups(layer_groups: Mapping[str, str | Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if layer_groups is None:
        return {}
    if not isinstance(layer_groups, Mapping):
        raise TypeError(
            "layer_groups must map a group's name to its layer names (or to a name prefix), "
            f"but got {type(layer_groups).__name__}."
        )
    out: dict[str, tuple[str, ...]] = {}
    for name, members in layer_groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"A layer group's name must be a non-empty string, but got {name!r}.")
        if isinstance(members, str):
            if not members:
                raise ValueError(f"Layer group {name!r} has an empty prefix.")
            patterns: tuple[str, ...] = (members if members.endswith("*") else members + "*",)
        else:
            patterns = _names(f"layer_groups[{name!r}]", members)
            if not patterns:
                raise ValueError(f"Layer group {name!r} has no layers.")
        out[name] = patterns
    return out


def _repeat_seeds(seed: int | None, n_repeats: int) -> list[int]:
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


def _stop(study: Study) -> None:
    """``study.stop()`` where it is allowed (inside an optimize loop); a no-op elsewhere."""
    study = getattr(study, "_study", study)  # HyperbandPruner's per-bracket view
    with contextlib.suppress(RuntimeError):  # not in an optimize loop: nothing to stop
        study.stop()
