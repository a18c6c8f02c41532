"""PBTSampler: the population, exploit and explore, the asynchronous ranking, the lineage
on the trials, the end by itself, and a study resumed by a new sampler."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from optuna_spark._handout import Availability
from optuna_spark.checkpoint._api import ATTR_STARTS_FROM
from optuna_spark.pbt import PBTSampler
from optuna_spark.pbt import Segment
from optuna_spark.pbt import get_segment
from optuna_spark.pbt import pbt_report
from optuna_spark.pbt import plot_pbt
from optuna_spark.pbt._population import Population
from optuna_spark.pbt._population import quantiles
from tests.pbt import _toy

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _checkpoints_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna_spark.checkpoint import _api

    monkeypatch.setattr(_api, "DEFAULT_DIR", tmp_path / "checkpoints")


def seg(trial: Any) -> Segment:
    segment = get_segment(trial)
    assert segment is not None
    return segment


def _segment(number: int, member: int, generation: int, value: float | None, **kw: Any) -> Any:
    trial = create_trial(
        state=TrialState.RUNNING if value is None else TrialState.COMPLETE,
        value=value,
        params={"lr": 0.1},
        distributions={"lr": FloatDistribution(1e-3, 1.0, log=True)},
        user_attrs={"pbt:member": member, "pbt:generation": generation, **kw},
    )
    trial.number = number
    return trial


def test_bad_arguments_are_refused_at_once() -> None:
    for kwargs, message in [
        ({"population_size": 1, "n_generations": 3}, "population_size must be an int of at"),
        ({"population_size": 4, "n_generations": 0}, "n_generations must be"),
        ({"population_size": 4, "n_generations": 3, "quantile": 0.75}, r"quantile must be in"),
        ({"population_size": 4, "n_generations": 3, "perturb_factors": ()}, "perturb_factors"),
        (
            {"population_size": 4, "n_generations": 3, "resample_probability": 2},
            "resample_probability",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            PBTSampler(**kwargs)


def test_the_next_segment_goes_to_a_new_member_then_to_the_one_idle_longest() -> None:
    trials = [_segment(0, 0, 0, 1.0), _segment(1, 1, 0, None)]
    population = Population.of(trials, 3, 2)
    nxt = population.next_member()
    assert nxt is not None and nxt.index == 2  # not started yet
    trials.append(_segment(2, 2, 0, 0.5))
    population = Population.of(trials, 3, 2)
    nxt = population.next_member()
    assert nxt is not None and nxt.index == 0  # member 1 is still training
    done = [*trials, _segment(3, 0, 1, 2.0)]
    population = Population.of(done, 3, 2)
    nxt = population.next_member()
    assert nxt is not None and nxt.index == 2  # member 0's model has trained two segments
    assert not population.over


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_members_are_ranked_by_their_latest_score_in_the_studys_direction(direction: str) -> None:
    # Member 0's latest segment is its worst: asynchronous ranking reads that one, not its
    # best, and a member still in its first segment has no score yet.
    trials = [
        _segment(0, 0, 0, 9.0),
        _segment(1, 1, 0, 5.0),
        _segment(2, 2, 0, 1.0),
        _segment(3, 0, 1, 0.0),
        _segment(4, 3, 0, None),
    ]
    ranked = Population.of(trials, 4, 5).ranked(optuna.study.StudyDirection[direction.upper()])
    order = [m.index for m in ranked]
    assert order == ([0, 2, 1] if direction == "minimize" else [1, 2, 0])
    top, bottom = quantiles(ranked, 0.25)
    assert ([m.index for m in top], [m.index for m in bottom]) == ([order[0]], [order[-1]])


def test_quantiles_take_at_least_one_member_and_never_more_than_half() -> None:
    trials = [_segment(i, i, 0, float(i)) for i in range(8)]
    ranked = Population.of(trials, 8, 2).ranked(optuna.study.StudyDirection.MINIMIZE)
    assert [len(q) for q in quantiles(ranked, 0.25)] == [2, 2]
    assert [len(q) for q in quantiles(ranked, 0.5)] == [4, 4]
    assert [len(q) for q in quantiles(ranked[:1], 0.5)] == [0, 0]  # alone: nobody to copy


def test_a_study_ends_by_itself_with_every_members_chain_recorded() -> None:
    sampler = PBTSampler(population_size=4, n_generations=4, seed=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_toy.train)  # no n_trials: the sampler stops the study
    trials = study.trials
    # At most 4 x 4 trials: an exploit copies a model that trained longer, and saves some.
    assert 12 <= len(trials) <= 16 and all(t.state == TrialState.COMPLETE for t in trials)
    by_number = {t.number: t for t in trials}
    exploits = 0
    for trial in trials:
        segment = seg(trial)
        assert segment is not None
        if segment.generation == 0:
            assert segment.parent is None and trial.user_attrs["loaded_step"] is None
            continue
        parent = by_number[segment.parent]
        assert parent.number < trial.number and parent.state == TrialState.COMPLETE
        # It started from its parent's checkpoint, which the parent saved when it ended.
        assert trial.user_attrs["loaded_step"] == (seg(parent).generation + 1) * 5
        assert trial.system_attrs[ATTR_STARTS_FROM] == parent._trial_id
        if segment.exploited is None:
            assert seg(parent).member == segment.member
            assert trial.params == parent.params  # continued with its own
        else:
            exploits += 1
            assert seg(parent).member == segment.exploited
            ratio = trial.params["lr"] / parent.params["lr"]
            resampled = not any(math.isclose(ratio, f) for f in (0.8, 1.2, 1.0))
            assert resampled or trial.params["optimizer"] == parent.params["optimizer"]
            assert set(segment.changes) <= {"lr", "optimizer"}
    assert exploits >= 2
    for member in range(4):  # each member's model trained exactly 4 segments
        generations = [seg(t).generation for t in trials if seg(t).member == member]
        assert generations[0] == 0 and generations[-1] == 3
        assert generations == sorted(set(generations))
    for trial in trials:  # a segment's generation is its model's depth
        parent = seg(trial).parent
        expected = 0 if parent is None else seg(by_number[parent]).generation + 1
        assert seg(trial).generation == expected


def test_the_bottom_member_copies_a_top_member_and_explores() -> None:
    sampler = PBTSampler(population_size=4, n_generations=3, resample_probability=0.0, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    lrs = [0.5, 0.01, 0.2, 0.05]  # member 0 best, member 1 worst
    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    study.optimize(_toy.train, n_trials=4)
    trial = study.ask()  # member 0 is idle longest: it continues (it is on top)
    assert seg(trial).member == 0 and seg(trial).exploited is None
    assert trial.suggest_float("lr", 1e-3, 1.0, log=True) == 0.5  # its own
    study.tell(trial, 1.0)
    trial = study.ask()  # member 1, the worst, copies member 0 (the top quarter)
    segment = seg(trial)
    assert segment is not None and segment.member == 1 and segment.exploited == 0
    assert segment.parent == 4  # member 0's latest scored segment
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    assert lr in (pytest.approx(0.4), pytest.approx(0.6))
    assert segment.changes == {"lr": [0.01, lr]}


def test_a_failed_segment_runs_again_from_where_it_started() -> None:
    sampler = PBTSampler(population_size=2, n_generations=3, seed=0)
    study = optuna.create_study(sampler=sampler)
    failed = {"done": False}

    def objective(trial: optuna.Trial) -> float:
        if seg(trial).generation == 1 and not failed["done"]:
            failed["done"] = True
            raise RuntimeError("out of memory")
        return _toy.train(trial)

    study.optimize(objective, catch=(RuntimeError,))
    bad = next(t for t in study.trials if t.state == TrialState.FAIL)
    again = next(
        t for t in study.trials if t.number > bad.number and seg(t).member == seg(bad).member
    )
    assert seg(again).parent == seg(bad).parent
    assert again.params == bad.system_attrs["fixed_params"]  # what it was to train with
    # The failed segment does not count: each model still trains its three segments.
    assert len(study.trials) == 7
    for member in (0, 1):
        assert max(seg(t).generation for t in study.trials if seg(t).member == member) == 2


def test_a_resumed_study_continues_the_same_population(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'pbt.db'}"

    def sampler() -> PBTSampler:
        return PBTSampler(population_size=3, n_generations=4, seed=2)

    study = optuna.create_study(
        study_name="pbt", storage=storage, direction="maximize", sampler=sampler()
    )
    study.optimize(_toy.train, n_trials=5)  # the driver "dies" here
    again = optuna.load_study(study_name="pbt", storage=storage, sampler=sampler())
    again.optimize(_toy.train)  # a new driver, a new sampler: it ends by itself
    trials = again.trials
    pairs = [(seg(t).member, seg(t).generation) for t in trials]
    assert len(pairs) == len(set(pairs))  # no segment twice
    for member in range(3):  # each member's model trained its four segments
        assert max(g for m, g in pairs if m == member) == 3
    assert all(t.user_attrs["loaded_step"] is not None for t in trials[5:] if seg(t).generation)


def test_availability_waits_while_every_free_member_is_training() -> None:
    sampler = PBTSampler(population_size=2, n_generations=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    first = [study.ask(), study.ask()]
    assert sampler.availability(study) is Availability.WAIT  # both members training
    for trial in first:
        trial.suggest_float("lr", 1e-3, 1.0, log=True)
        study.tell(trial, 0.5)
    assert sampler.availability(study) is Availability.READY
    second = [study.ask(), study.ask()]
    assert {seg(t).member for t in second} == {0, 1}
    assert sampler.availability(study) is Availability.WAIT  # a last segment may fail
    for trial in second:
        study.tell(trial, 0.7)
    assert sampler.availability(study) is Availability.EXHAUSTED


def test_the_report_gives_the_best_members_schedule_and_the_plot_its_traces() -> None:
    sampler = PBTSampler(population_size=4, n_generations=3, seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_toy.train)
    report = pbt_report(study)
    assert len(report.segments) == len(study.trials) <= 12
    assert len(report.schedule) == 3  # the best model trained three segments
    assert set(report.segments.columns) >= {"member", "generation", "parent", "score", "lr"}
    best = study.trials[report.best_trial]
    assert seg(best).member == report.best_member
    # The schedule is the best segment's chain of parents, from a first segment.
    chain = list(report.schedule["trial"])
    assert chain[-1] == report.best_trial and seg(study.trials[chain[0]]).parent is None
    for earlier, later in itertools.pairwise(chain):
        assert seg(study.trials[later]).parent == earlier
    figure = plot_pbt(study)
    names = {trace.name for trace in figure.data}
    assert {f"member {m}" for m in range(4)} <= names
    assert any(trace.marker.symbol == "x" for trace in figure.data if trace.marker)


def test_a_study_without_segments_has_no_report() -> None:
    study = optuna.create_study()
    with pytest.raises(ValueError, match="has no Population Based Training segment"):
        pbt_report(study)


def test_a_retried_segment_starts_from_its_parents_checkpoint_again() -> None:
    # A driver's retry of a lost trial copies its parameters and user attributes, not the
    # run's system attributes: the sampler gives the segment its starting point back.
    sampler = PBTSampler(population_size=2, n_generations=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_toy.train, n_trials=3)
    lost = study.trials[2]
    assert seg(lost).parent is not None
    study.add_trial(
        create_trial(
            state=TrialState.WAITING,
            params=lost.params,
            distributions=lost.distributions,
            user_attrs=lost.user_attrs,
        )
    )
    retry = study.ask()
    assert seg(retry) == seg(lost)  # the same segment
    starts_from = study.trials[retry.number].system_attrs[ATTR_STARTS_FROM]
    assert starts_from == study.trials[seg(lost).parent]._trial_id  # type: ignore[index]
    assert _toy.train(retry) > 0 and retry.user_attrs["loaded_step"] is not None


def test_a_multi_objective_study_is_refused_with_the_reason() -> None:
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=PBTSampler(population_size=2, n_generations=2)
    )
    with pytest.raises(ValueError, match="ranks members by one objective value"):
        study.ask()
