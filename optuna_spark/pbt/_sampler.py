"""``PBTSampler``: asynchronous Population Based Training as an Optuna sampler."""

from __future__ import annotations

import contextlib
import copy
import datetime
import math
import random
import threading
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._handout import Availability
from optuna_spark._waiting import may_wait
from optuna_spark.checkpoint._api import ATTR_KEEP
from optuna_spark.checkpoint._api import ATTR_STARTS_FROM
from optuna_spark.pbt import _population as p
from optuna_spark.pbt._explore import explore

#: Optuna's own system attribute of the parameters a trial is given (``enqueue_trial``):
#: ``Trial.suggest_*`` returns them without asking the sampler.
_FIXED = "fixed_params"
#: Seconds between two looks at the study while a thread waits for a member to be free.
_POLL = 0.5


class PBTSampler(BaseSampler):
    """Asynchronous Population Based Training: a population of members, each a chain of
    trials (segments) that train from one another's checkpoints.

    Each trial is one member's next segment: the objective loads the checkpoint it starts
    from (:func:`optuna_spark.checkpoint.load`), trains for as many steps as it likes,
    reports its score, saves its checkpoint (:func:`optuna_spark.checkpoint.save`) and
    returns the score. The first segment of each member samples its hyperparameters with
    ``sampler`` from the objective's own ``suggest_*`` calls. When a member's segment ends,
    the member is ranked against the latest score of every other member (no generation
    barrier: no worker ever waits for a generation to finish). In the bottom ``quantile`` it
    **exploits**: its next segment starts from the checkpoint of a member of the top
    ``quantile`` and copies its hyperparameters, then **explores** them (each resampled
    with ``resample_probability``, else multiplied by one of ``perturb_factors`` within its
    bounds; categoricals are only resampled). Otherwise it continues from its own
    checkpoint with its own hyperparameters. A segment's generation is its parent's plus
    one: how many segments its model has trained. A member is done once its model has
    trained ``n_generations`` segments (an exploit copies a model that may have trained
    longer than the member's own, so some members need fewer trials); top members that are
    done are not copied. A failed segment runs again from where it started (a member whose
    segments fail three times in a row is done). The study ends by itself when every member
    is done: at most ``population_size * n_generations`` trials, failures aside.

    The lineage is recorded on every trial as user attributes (``pbt:member``,
    ``pbt:generation``, ``pbt:parent``, ``pbt:exploited``, ``pbt:changes``), so that a study
    resumed by a new driver continues the same population, and optuna-dashboard shows it.
    :func:`pbt_report` and :func:`plot_pbt` read it back. Segment checkpoints are kept once
    their trial ends (others start from them); :func:`remove_superseded_checkpoints`, between
    runs, removes those no later segment can start from.

    With :class:`~optuna_spark.SparkExecutor` it needs ``sampling="driver"`` (the default);
    use ``resume_lost_trials`` so that a segment whose worker is lost resumes from its last
    checkpoint. It also runs under a plain ``study.optimize``.

    Args:
        population_size: How many members train side by side.
        n_generations: How many segments each member's model trains.
        quantile: The share of the population at the bottom that exploits the top (the top
            share is as large); at most half of the members each.
        resample_probability: The chance that an explored value is drawn again from its
            distribution instead of being perturbed.
        perturb_factors: What a number is multiplied by when perturbed (one at random).
        sampler: Samples the first segment's hyperparameters, and any parameter a member
            has not had before (default: ``RandomSampler(seed)``).
        seed: Seeds the choices of exploit and explore.

    Example:

        .. testcode::

            import pathlib
            import tempfile

            import optuna
            from optuna_spark import checkpoint
            from optuna_spark.pbt import PBTSampler, get_segment, pbt_report


            def objective(trial):
                lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
                segment = get_segment(trial)
                start = checkpoint.load(trial)  # its parent's checkpoint; None at first
                w = 0.0 if start is None else float((start.path / "w.txt").read_text())
                for _ in range(5):
                    w += lr * (1.0 - w)  # five steps of training towards 1
                trial.report(w, step=segment.generation)
                with tempfile.TemporaryDirectory() as tmp:
                    pathlib.Path(tmp, "w.txt").write_text(str(w))
                    checkpoint.save(trial, tmp, step=segment.generation)
                return w


            sampler = PBTSampler(population_size=4, n_generations=3, seed=0)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective)  # ends by itself: 4 models of 3 segments each
            report = pbt_report(study)
            assert set(report.segments["member"]) == {0, 1, 2, 3}
            assert len(report.schedule) == 3  # the best model trained 3 segments
    """

    def __init__(
        self,
        population_size: int,
        n_generations: int,
        *,
        quantile: float = 0.25,
        resample_probability: float = 0.25,
        perturb_factors: Sequence[float] = (0.8, 1.2),
        sampler: BaseSampler | None = None,
        seed: int | None = None,
    ) -> None:
        for name, value, least in (
            ("population_size", population_size, 2),
            ("n_generations", n_generations, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int of at least {least}, not {value!r}.")
        if not 0 < quantile <= 0.5:
            raise ValueError(f"quantile must be in (0, 0.5], not {quantile!r}.")
        if not 0 <= resample_probability <= 1:
            raise ValueError(
                f"resample_probability must be in [0, 1], not {resample_probability!r}."
            )
        factors = tuple(perturb_factors)
        if not factors or not all(
            isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in factors
        ):
            raise ValueError(
                f"perturb_factors must be positive numbers, such as (0.8, 1.2), not {factors!r}."
            )
        self.population_size = population_size
        self.n_generations = n_generations
        self.quantile = quantile
        self.resample_probability = resample_probability
        self.perturb_factors = factors
        self._first = sampler or RandomSampler(seed)
        self._random = RandomSampler(seed)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"], state["_finished"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)

    @property
    def n_trials(self) -> int:
        """The most segments the study runs, failures aside: ``population_size *
        n_generations`` (an exploit, which copies a model that trained longer, saves some)."""
        return self.population_size * self.n_generations

    def availability(self, study: Study) -> Availability:
        """``READY`` while a member is free to train its next segment, ``WAIT`` while every
        member that is not done is training one, ``EXHAUSTED`` once every member is done
        (see :class:`optuna_spark._handout.FiniteSampler`)."""
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return Availability.READY
        population = self._population(trials)
        if population.over:
            return Availability.EXHAUSTED
        return Availability.READY if population.next_member() else Availability.WAIT

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
        # A member's known hyperparameters come as the trial's fixed parameters; this is a
        # first segment's, or one the member has not had before.
        return self._first.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) > 1:
            raise ValueError("PBTSampler ranks members by one objective value, not several.")
        if p.MEMBER in trial.user_attrs:
            _carry_on(study, trial)  # a segment made already: one that resumes, or a retry
            return
        with self._lock:
            population = self._population(study.get_trials(deepcopy=False))
            member = population.next_member()
            while member is None and not population.over and self._may_wait(study):
                self._finished.wait(_POLL)
                population = self._population(study.get_trials(deepcopy=False))
                member = population.next_member()
            if member is None:
                _stop(study)  # nothing to train now: a surplus trial (it trains nothing)
                return
            self._hand_out(study, trial, population, member)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._finished.notify_all()
        # Optuna calls this before it stores the trial's end: count it as ended.
        ended = copy.deepcopy(trial)
        ended.state, ended.values = state, values
        ended.datetime_complete = ended.datetime_complete or datetime.datetime.now()
        trials = [
            ended if t.number == trial.number else t for t in study.get_trials(deepcopy=False)
        ]
        if self._population(trials).over:
            _stop(study)  # every member's model has trained its n_generations segments

    # -----------------------------------------------------------------------------------------
    # Internals.

    def _population(self, trials: Sequence[FrozenTrial]) -> p.Population:
        return p.Population.of(trials, self.population_size, self.n_generations)

    @staticmethod
    def _may_wait(study: Study) -> bool:
        return may_wait() and not optuna_adapter.stop_requested(study)

    def _hand_out(
        self, study: Study, trial: FrozenTrial, population: p.Population, member: p.Member
    ) -> None:
        """Decide ``member``'s next segment and record it on ``trial``."""
        last = member.last
        parent: FrozenTrial | None = None
        exploited: int | None = None
        changes: dict[str, list[Any]] = {}
        params: dict[str, Any] = {}
        if last is not None and p.score_of(last) is None:
            # It failed (or reported nothing): run that segment again from where it started.
            start = last.user_attrs.get(p.PARENT)
            parent = next((t for t in member.segments if t.number == start), None)
            if parent is None and isinstance(start, int):
                parent = study.get_trials(deepcopy=False)[start]
            params = {**last.system_attrs.get(_FIXED, {}), **last.params}
        elif last is not None:
            top, bottom = p.quantiles(population.ranked(study.direction), self.quantile)
            parent, params = last, dict(last.params)
            # A model that has trained all its segments already cannot be trained further.
            donors = [m for m in top if not m.done(self.n_generations)]
            if donors and member.index in {m.index for m in bottom}:
                donor = self._rng.choice(donors)
                parent = donor.scored
                assert parent is not None
                params = explore(
                    parent.params,
                    parent.distributions,
                    self._rng,
                    lambda name, dist: self._random.sample_independent(study, trial, name, dist),
                    self.resample_probability,
                    self.perturb_factors,
                )
                exploited = donor.index
                changes = {
                    k: [last.params.get(k), v]
                    for k, v in params.items()
                    if last.params.get(k) != v
                }
        _record(study, trial, member, parent, exploited, changes, params)


def _record(
    study: Study,
    trial: FrozenTrial,
    member: p.Member,
    parent: FrozenTrial | None,
    exploited: int | None,
    changes: dict[str, list[Any]],
    params: dict[str, Any],
) -> None:
    """Write the segment's lineage on ``trial`` (user attributes), and what the run needs
    (system attributes): its fixed hyperparameters and the checkpoint it starts from."""
    storage = optuna_adapter.storage_of(study)
    trial_id = optuna_adapter.trial_id_of(trial)
    user = {
        p.MEMBER: member.index,
        p.GENERATION: 0 if parent is None else int(parent.user_attrs[p.GENERATION]) + 1,
        p.PARENT: None if parent is None else parent.number,
        p.EXPLOITED: exploited,
        p.CHANGES: changes,
    }
    system: dict[str, Any] = {ATTR_KEEP: True}
    if parent is not None:
        system[ATTR_STARTS_FROM] = optuna_adapter.trial_id_of(parent)
    if params:
        system[_FIXED] = params
    for key, value in user.items():
        storage.set_trial_user_attr(trial_id, key, value)
        trial.user_attrs[key] = value
    for key, value in system.items():
        storage.set_trial_system_attr(trial_id, key, value)
        trial.system_attrs[key] = value  # the Trial reads its fixed parameters from here


def _carry_on(study: Study, trial: FrozenTrial) -> None:
    """A segment made already keeps what it starts from: a retry of a lost one (a copy of
    its parameters and user attributes) gets the system attributes back."""
    if ATTR_KEEP in trial.system_attrs:
        return
    parent = trial.user_attrs.get(p.PARENT)
    system: dict[str, Any] = {ATTR_KEEP: True}
    if isinstance(parent, int):
        system[ATTR_STARTS_FROM] = optuna_adapter.trial_id_of(
            study.get_trials(deepcopy=False)[parent]
        )
    storage = optuna_adapter.storage_of(study)
    for key, value in system.items():
        storage.set_trial_system_attr(optuna_adapter.trial_id_of(trial), key, value)
        trial.system_attrs[key] = value


def _stop(study: Study) -> None:
    """``study.stop()`` where it is allowed (inside an optimize loop); a no-op elsewhere."""
    with contextlib.suppress(RuntimeError):
        study.stop()
