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
from optuna._warnings import optuna_warn
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import GridSampler
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark._handout import Availability
from optuna_spark._handout import FiniteSampler

__all__ = [
    "FrozenStudy",
    "clear_stop",
    "distribution_contains",
    "finite_view",
    "forget_cached_trials",
    "frozen_study",
    "in_optimize_loop",
    "is_in_optimize_loop",
    "rdb_url_of",
    "remember_report",
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


def rdb_url_of(storage: BaseStorage) -> str | None:
    """The database URL of an RDB storage (under Optuna's cache of it, ``_backend``), else
    ``None``: two storage objects with one URL are one study store."""
    backend = getattr(storage, "_backend", storage)
    return backend.url if isinstance(backend, RDBStorage) else None


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
    detail: str | None = None,
) -> FrozenTrial:
    """Finish ``trial`` exactly as ``Study.optimize`` does, logging its lines word for word.

    ``values`` with ``state=None`` go through Optuna's checks (NaN, None, wrong count: FAIL
    with a warning). ``detail`` is what ``Study.optimize`` would put in the line: ``str()`` of
    the ``TrialPruned`` for a PRUNED state, ``repr()`` of the objective's exception for a FAIL
    the caller chose. Uses ``optuna.study._tell._tell_with_warning`` and
    ``Study._log_completed_trial``.
    """
    new_state, new_values, warning = _tell_with_warning(
        study, trial, values, state, suppress_warning=True
    )
    # The stored trial, not ``trial``: with sampling on the workers, the parameters were set
    # there, and the driver's ``optuna.Trial`` never saw them.
    frozen = storage_of(study).get_trial(trial_id_of(trial))
    if new_state == TrialState.COMPLETE:
        assert new_values is not None
        study._log_completed_trial(new_values, frozen.number, frozen.params)
    elif new_state == TrialState.PRUNED:
        _study_logger.info(f"Trial {frozen.number} pruned. {detail or ''}")
    elif new_state == TrialState.FAIL:
        why = warning if warning is not None else detail
        if why:
            _study_logger.warning(
                f"Trial {frozen.number} failed with parameters: {frozen.params} because of "
                f"the following error: {why}."
            )
            returned: object = values  # as the objective returned it: one value or several
            if isinstance(values, Sequence) and len(values) == 1:
                returned = values[0]
            _study_logger.warning(f"Trial {frozen.number} failed with value {returned!r}.")
    return frozen


class _GridView:
    """``GridSampler`` as a :class:`~optuna_spark._handout.FiniteSampler`.

    ``GridSampler.is_exhausted`` answers only once every point has *finished*; a central
    driver must stop handing out trials once every point has *started*, instead of
    duplicating a running one. Reads ``GridSampler._all_grids``,
    ``GridSampler._same_search_space`` and the ``grid_id`` / ``search_space`` trial system
    attributes that GridSampler writes.
    """

    def __init__(self, sampler: GridSampler) -> None:
        self._sampler = sampler

    def availability(self, study: optuna.Study) -> Availability:
        storage, study_id = storage_of(study), study_id_of(study)
        started: set[int] = set()
        for t in storage.get_all_trials(study_id, deepcopy=False):
            if t.state == TrialState.WAITING:
                return Availability.READY  # a queued trial (a retry) goes out first
            grid_id = t.system_attrs.get("grid_id")
            if grid_id is not None and self._sampler._same_search_space(
                t.system_attrs["search_space"]
            ):
                started.add(grid_id)
        if len(started) >= len(self._sampler._all_grids):
            return Availability.EXHAUSTED
        return Availability.READY


def finite_view(sampler: BaseSampler) -> FiniteSampler | None:
    """``sampler`` as a :class:`~optuna_spark._handout.FiniteSampler`, when it is one.

    A sampler that implements the protocol is its own view; ``GridSampler`` is wrapped
    (:class:`_GridView`); any other sampler always has a next point (``None``).
    """
    if isinstance(sampler, FiniteSampler):
        return sampler
    if isinstance(sampler, GridSampler):
        return _GridView(sampler)
    return None


def distribution_contains(distribution: BaseDistribution, internal_value: float) -> bool:
    """Whether ``internal_value`` lies in ``distribution`` (``BaseDistribution._contains``)."""
    return bool(distribution._contains(internal_value))


def remember_report(trial: optuna.Trial, value: float, step: int) -> bool:
    """``trial.report(value, step)`` in memory only: the step joins the trial's own view of
    itself (what ``trial.should_prune()`` gives the pruner), and the caller writes it to the
    storage. Checks and warns as ``Trial.report`` does; returns ``False`` for a step reported
    already, which is ignored."""
    if len(trial.study.directions) > 1:
        raise NotImplementedError(
            "Trial.report is not supported for multi-objective optimization."
        )
    if step < 0:
        raise ValueError(f"`{step=}` must be non-negative.")
    cached = trial._cached_frozen_trial
    if step in cached.intermediate_values:
        optuna_warn(f"The reported value is ignored because this `{step=}` is already reported.")
        return False
    cached.intermediate_values[step] = value
    return True
