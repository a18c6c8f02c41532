"""The few Optuna internals the driver relies on, in one place.

``Study.optimize`` is not a reusable building block: the driver re-creates its per-trial
semantics (value checks, logging, ``study.stop()`` from callbacks and samplers) around
``ask``/``tell`` done on behalf of remote workers. The private Optuna names used for that
live here only, so an Optuna upgrade touches one module.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.samplers import GridSampler
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

_logger = logging.getLogger("optuna.study.study")


@contextlib.contextmanager
def in_optimize_loop(study: optuna.Study) -> Iterator[None]:
    """Let ``study.stop()`` work in this thread, as inside ``Study.optimize``."""
    local = study._thread_local
    previous = getattr(local, "in_optimize_loop", False)
    local.in_optimize_loop = True
    try:
        yield
    finally:
        local.in_optimize_loop = previous


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: Any,
    state: TrialState | None,
    error: list[str] | None,
) -> FrozenTrial:
    """Finish ``trial`` exactly as ``Study.optimize`` does, logging as it logs."""
    new_state, new_values, warning = _tell_with_warning(
        study, trial, values, state, suppress_warning=True
    )
    if new_state == TrialState.COMPLETE:
        assert new_values is not None
        study._log_completed_trial(new_values, trial.number, trial.params)
    elif new_state == TrialState.PRUNED:
        _logger.info(f"Trial {trial.number} pruned.")
    elif new_state == TrialState.FAIL:
        why = warning if warning is not None else (f"{error[0]}: {error[1]}" if error else "")
        if why:
            _logger.warning(
                f"Trial {trial.number} failed with parameters: {trial.params} because of the "
                f"following error: {why}."
            )
        if error is not None:
            _logger.warning(f"Trial {trial.number} failed with remote traceback:\n{error[2]}")
    return study._storage.get_trial(trial._trial_id)


def all_points_started(study: optuna.Study) -> bool:
    """Whether asking once more could only repeat a point that is already running or done.

    ``GridSampler`` (and any sampler with a public ``is_exhausted``) has a finite set of
    points. Once every point has started, a central driver hands out no more trials instead of
    duplicating a running one.
    """
    sampler = study.sampler
    if isinstance(sampler, GridSampler):
        started: set[int] = set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            grid_id = t.system_attrs.get("grid_id")
            if (
                grid_id is not None
                and sampler._same_search_space(t.system_attrs["search_space"])
                and (t.state.is_finished() or t.state == TrialState.RUNNING)
            ):
                started.add(grid_id)
        if study._storage.get_n_trials(study._study_id, TrialState.WAITING) > 0:
            return False
        return len(started) >= len(sampler._all_grids)
    is_exhausted = getattr(sampler, "is_exhausted", None)
    if callable(is_exhausted):
        return bool(is_exhausted(study))
    return False
