"""Every use of Optuna's private API, in one place.

``Study.optimize`` is not a reusable building block: the coordinator re-creates its per-trial
semantics (value checks, logging, ``study.stop()`` from callbacks and samplers) around
``ask``/``tell`` done on behalf of remote workers, and a storage proxy must read and build
Optuna's own records. The private names used for that live here only, each behind a function
with a contract test (``tests/test_optuna_adapter.py``), so that an Optuna release that
changes one fails one test with a message naming it, and an upgrade touches one module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import GridSampler
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

__all__ = [
    "FrozenStudy",
    "all_points_started",
    "clear_stop",
    "distribution_contains",
    "forget_cached_trials",
    "frozen_study",
    "in_optimize_loop",
    "is_in_optimize_loop",
    "stop_requested",
    "storage_of",
    "study_id_of",
    "tell",
    "trial_id_of",
]

_study_logger = logging.getLogger("optuna.study.study")


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (``Study._storage``)."""
    storage: BaseStorage = study._storage
    return storage


def study_id_of(study: optuna.Study | FrozenStudy) -> int:
    """The storage's id of a study (``Study._study_id``, ``FrozenStudy._study_id``)."""
    return int(study._study_id)


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (``Trial._trial_id``, ``FrozenTrial._trial_id``)."""
    return int(trial._trial_id)


def frozen_study(
    study_id: int,
    study_name: str,
    directions: Sequence[StudyDirection],
    user_attrs: dict[str, Any],
    system_attrs: dict[str, Any],
) -> FrozenStudy:
    """What ``BaseStorage.get_all_studies`` returns (``optuna.study._frozen.FrozenStudy``)."""
    return FrozenStudy(
        study_name=study_name,
        direction=None,
        directions=list(directions),
        user_attrs=user_attrs,
        system_attrs=system_attrs,
        study_id=study_id,
    )


def is_in_optimize_loop(study: optuna.Study) -> bool:
    """Whether this thread is inside ``Study.optimize`` (``Study._thread_local``)."""
    return bool(study._thread_local.in_optimize_loop)


class in_optimize_loop:
    """Let ``study.stop()`` work in this thread, as inside ``Study.optimize``.

    A class rather than a generator: it is entered on every request of a worker.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._local = study._thread_local
        self._previous = False

    def __enter__(self) -> None:
        self._previous = self._local.in_optimize_loop
        self._local.in_optimize_loop = True

    def __exit__(self, *exc: object) -> None:
        self._local.in_optimize_loop = self._previous


def forget_cached_trials(study: optuna.Study) -> None:
    """Make the next sampling read the trials afresh, as ``Study.ask`` does for each trial.

    Samplers such as TPE read ``Study._get_trials(use_cache=True)``, which keeps the trials
    of the first read in ``Study._thread_local.cached_all_trials`` until it is cleared.
    """
    study._thread_local.cached_all_trials = None


def stop_requested(study: optuna.Study) -> bool:
    """Whether ``study.stop()`` was called since the flag was last cleared (``_stop_flag``)."""
    return bool(study._stop_flag)


def clear_stop(study: optuna.Study) -> None:
    """Forget an earlier ``study.stop()``, as ``Study.optimize`` does when it starts."""
    study._stop_flag = False


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: float | Sequence[float] | None,
    state: TrialState | None,
    failure: str | None = None,
) -> FrozenTrial:
    """Finish ``trial`` exactly as ``Study.optimize`` does, logging as it logs.

    ``values`` with ``state=None`` go through Optuna's checks (NaN, None, wrong count: FAIL
    with a warning). ``failure`` is the reason logged for a FAIL state that the caller chose.
    Uses ``optuna.study._tell._tell_with_warning`` and ``Study._log_completed_trial``.
    """
    new_state, new_values, warning = _tell_with_warning(
        study, trial, values, state, suppress_warning=True
    )
    if new_state == TrialState.COMPLETE:
        assert new_values is not None
        study._log_completed_trial(new_values, trial.number, trial.params)
    elif new_state == TrialState.PRUNED:
        _study_logger.info(f"Trial {trial.number} pruned.")
    elif new_state == TrialState.FAIL:
        why = warning if warning is not None else failure
        if why:
            _study_logger.warning(
                f"Trial {trial.number} failed with parameters: {trial.params} because of the "
                f"following error: {why}."
            )
    return storage_of(study).get_trial(trial_id_of(trial))


def all_points_started(study: optuna.Study) -> bool:
    """Whether asking once more could only repeat a point that is already running or done.

    ``GridSampler`` (and any sampler with a public ``is_exhausted``) has a finite set of
    points. Once every point has started, a central driver hands out no more trials instead of
    duplicating a running one (``GridSampler.is_exhausted`` answers only once every point has
    finished). Reads ``GridSampler._all_grids``, ``GridSampler._same_search_space`` and the
    ``grid_id`` / ``search_space`` trial system attributes that GridSampler writes.
    """
    sampler = study.sampler
    if isinstance(sampler, GridSampler):
        storage, study_id = storage_of(study), study_id_of(study)
        if storage.get_n_trials(study_id, TrialState.WAITING) > 0:
            return False
        started: set[int] = set()
        for t in storage.get_all_trials(study_id, deepcopy=False):
            grid_id = t.system_attrs.get("grid_id")
            if (
                grid_id is not None
                and sampler._same_search_space(t.system_attrs["search_space"])
                and (t.state.is_finished() or t.state == TrialState.RUNNING)
            ):
                started.add(grid_id)
        return len(started) >= len(sampler._all_grids)
    is_exhausted = getattr(sampler, "is_exhausted", None)
    if callable(is_exhausted):
        return bool(is_exhausted(study))
    return False


def sampler_must_wait(study: optuna.Study) -> bool:
    """Whether the sampler has nothing to hand out until a running trial finishes.

    An adaptive ablation (``AblationSampler.must_wait``) decides what runs next from results
    that are not in yet; a driver keeps the asking worker waiting instead of making a trial.
    """
    must_wait = getattr(study.sampler, "must_wait", None)
    return callable(must_wait) and bool(must_wait(study))


def distribution_contains(distribution: BaseDistribution, internal_value: float) -> bool:
    """Whether ``internal_value`` lies in ``distribution`` (``BaseDistribution._contains``)."""
    return bool(distribution._contains(internal_value))
