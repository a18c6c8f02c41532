"""Contract tests of every Optuna private name optuna-spark relies on.

``optuna_spark._optuna_adapter`` is the only module that touches Optuna's private API. Each
test here pins one use; when an Optuna release changes it, the failing test's message names
the private name that changed.
"""

from __future__ import annotations

import logging
import math
import threading

import optuna
import pytest
from optuna.samplers import GridSampler
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as adapter
from optuna_spark._handout import Availability

_CHANGED = "Optuna changed {}: update optuna_spark/_optuna_adapter.py"


def test_storage_and_ids_of_studies_and_trials() -> None:
    storage = InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    assert adapter.storage_of(study) is storage, _CHANGED.format("Study._storage")
    assert adapter.study_id_of(study) == storage.get_study_id_from_name("s"), _CHANGED.format(
        "Study._study_id"
    )
    trial = study.ask()
    trial_id = adapter.trial_id_of(trial)
    assert storage.get_trial(trial_id).number == trial.number, _CHANGED.format("Trial._trial_id")
    frozen = storage.get_trial(trial_id)
    assert adapter.trial_id_of(frozen) == trial_id, _CHANGED.format("FrozenTrial._trial_id")


def test_frozen_study_is_what_storages_return() -> None:
    storage = InMemoryStorage()
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    storage.set_study_user_attr(study_id, "u", 1)
    made = adapter.frozen_study(study_id, "s", [StudyDirection.MAXIMIZE], {"u": 1}, {})
    (real,) = storage.get_all_studies()
    assert isinstance(real, adapter.FrozenStudy), _CHANGED.format("optuna.study._frozen")
    assert made == real, _CHANGED.format("FrozenStudy's constructor or equality")
    assert adapter.study_id_of(made) == study_id, _CHANGED.format("FrozenStudy._study_id")


def test_in_optimize_loop_lets_study_stop_work_outside_optimize() -> None:
    study = optuna.create_study()
    assert not adapter.is_in_optimize_loop(study)
    with pytest.raises(RuntimeError):
        study.stop()  # Optuna refuses outside optimize: the adapter must lift exactly that
    with adapter.in_optimize_loop(study):
        assert adapter.is_in_optimize_loop(study), _CHANGED.format("Study._thread_local")
        study.stop()
    assert not adapter.is_in_optimize_loop(study)
    assert adapter.stop_requested(study), _CHANGED.format("Study._stop_flag")
    adapter.clear_stop(study)
    assert not adapter.stop_requested(study)


def test_the_optimize_loop_flag_is_per_thread() -> None:
    study = optuna.create_study()
    seen: list[bool] = []
    with adapter.in_optimize_loop(study):
        other = threading.Thread(target=lambda: seen.append(adapter.is_in_optimize_loop(study)))
        other.start()
        other.join()
    assert seen == [False], _CHANGED.format("Study._thread_local (no longer thread-local)")


def test_tell_checks_values_and_logs_as_study_optimize(caplog: pytest.LogCaptureFixture) -> None:
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        study = optuna.create_study()
        with caplog.at_level(logging.INFO, logger="optuna"):
            ok = adapter.tell(study, study.ask(), 1.5, None)
            nan = adapter.tell(study, study.ask(), math.nan, None)
            pruned = adapter.tell(study, study.ask(), None, TrialState.PRUNED)
            failed = adapter.tell(study, study.ask(), None, TrialState.FAIL, "ValueError: x")
    finally:
        optuna.logging.disable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    states = [ok.state, nan.state, pruned.state, failed.state]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.FAIL], (
        _CHANGED.format("optuna.study._tell._tell_with_warning")
    )
    text = caplog.text
    assert "Trial 0 finished with value: 1.5" in text, _CHANGED.format(
        "Study._log_completed_trial"
    )
    assert "Trial 1 failed" in text and "nan" in text.lower()
    assert "Trial 2 pruned." in text
    assert "Trial 3 failed with parameters: {} because of the following error: ValueError: x" in (
        text
    )


def test_the_grid_samplers_view_reads_its_records() -> None:
    grid = {"x": [0.0, 1.0, 2.0]}
    study = optuna.create_study(sampler=GridSampler(grid, seed=0))
    view = adapter.finite_view(study.sampler)
    assert view is not None
    trials = []
    for _ in range(2):
        trials.append(study.ask())
        trials[-1].suggest_float("x", 0, 2)
    assert view.availability(study) is Availability.READY
    trials.append(study.ask())
    trials[-1].suggest_float("x", 0, 2)
    # GridSampler's own is_exhausted waits for the points to finish; a central driver must not.
    assert not study.sampler.is_exhausted(study)
    assert view.availability(study) is Availability.EXHAUSTED, _CHANGED.format(
        "GridSampler._all_grids, GridSampler._same_search_space or its grid_id/search_space "
        "system attributes"
    )
    # A WAITING trial (an enqueued retry) still has to run.
    study.enqueue_trial({"x": 0.0})
    assert view.availability(study) is Availability.READY


def test_a_finite_sampler_is_its_own_view_and_others_have_none() -> None:
    class TwoPoints(optuna.samplers.RandomSampler):
        def availability(self, study: optuna.Study) -> Availability:
            done = len(study.trials) >= 2
            return Availability.EXHAUSTED if done else Availability.READY

    sampler = TwoPoints()
    assert adapter.finite_view(sampler) is sampler
    assert adapter.finite_view(optuna.samplers.TPESampler()) is None
    # BruteForceSampler has no cheap view: it stays on the driver and stops the study itself.
    assert adapter.finite_view(optuna.samplers.RandomSampler()) is None


def test_distribution_contains_checks_internal_values() -> None:
    from optuna.distributions import CategoricalDistribution
    from optuna.distributions import IntDistribution

    arms = CategoricalDistribution(["base", "-a"])
    assert adapter.distribution_contains(arms, 1.0), _CHANGED.format("BaseDistribution._contains")
    assert not adapter.distribution_contains(arms, 2.0)
    repeats = IntDistribution(0, 4)
    assert adapter.distribution_contains(repeats, 4.0)
    assert not adapter.distribution_contains(repeats, 5.0)


def test_a_hyperband_bracket_view_stops_the_study_itself() -> None:
    """Samplers get HyperbandPruner's per-bracket view of the study; stop() must reach the
    study (LOCOSampler stops the study through that view)."""
    study = optuna.create_study(pruner=optuna.pruners.HyperbandPruner())
    trial = study.ask()
    view = optuna.pruners._filter_study(study, study.trials[trial.number])
    assert view is not study
    with adapter.in_optimize_loop(study):
        view.stop()
    assert adapter.stop_requested(study), _CHANGED.format("_BracketStudy.stop")


def test_forget_cached_trials_makes_samplers_see_new_trials() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 3
    study.enqueue_trial({"x": 0.5})
    # Outside ask(), the cache keeps what the first read saw ...
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 3, _CHANGED.format(
        "Study._get_trials(use_cache=True)"
    )
    # ... until it is forgotten.
    adapter.forget_cached_trials(study)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 4, _CHANGED.format(
        "Study._thread_local.cached_all_trials"
    )
