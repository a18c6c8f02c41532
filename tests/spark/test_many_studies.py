"""``SparkExecutor.optimize_many``: many studies on one Spark job and one pool of workers."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from tests._helpers import states_of
from tests.spark import _objectives

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def _studies(names: list[str]) -> list[optuna.Study]:
    storage = optuna.storages.InMemoryStorage()
    return [
        optuna.create_study(
            study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=i)
        )
        for i, name in enumerate(names)
    ]


def test_forty_studies_share_four_workers_with_one_trial_each_in_flight(spark: object) -> None:
    studies = _studies([f"segment-{k}" for k in range(40)])
    executor = SparkExecutor(spark, n_workers=4)  # type: ignore[arg-type]
    executor.optimize_many(studies, _objectives.per_segment, n_trials=5, max_concurrent_trials=1)

    partitions = set()
    for study in studies:
        trials = study.trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 5, study.study_name
        # Never two trials of one study at once: each starts after the previous one ended.
        for before, after in itertools.pairwise(trials):
            assert before.datetime_complete is not None and after.datetime_start is not None
            assert after.datetime_start >= before.datetime_complete, study.study_name
        partitions |= {t.system_attrs["optuna_spark:worker"]["partition"] for t in trials}
    assert partitions == {0, 1, 2, 3}  # one job: its four tasks served every study


def test_each_study_gets_its_own_objective_n_trials_and_timeout(
    spark: object, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = _studies(["segment-1", "segment-2", "segment-3"])
    executor = SparkExecutor(spark, n_workers=2)  # type: ignore[arg-type]
    seen: list[tuple[str, int]] = []
    executor.optimize_many(
        [(a, _objectives.per_segment), (b, _objectives.quadratic), (c, _objectives.per_segment)],
        n_trials={"segment-1": 3, "segment-2": 6},  # segment-3: no limit but its timeout
        timeout={"segment-3": 2.0},
        callbacks=[lambda study, trial: seen.append((study.study_name, trial.number))],
        show_progress_bar="studies",
    )
    # Each study's callbacks ran on the driver, with that study, once per trial.
    for study in (a, b, c):
        numbers = sorted(n for name, n in seen if name == study.study_name)
        assert numbers == [t.number for t in study.trials]
    assert states_of(a) == {"COMPLETE": 3}
    assert states_of(b) == {"COMPLETE": 6}
    assert all("pid" in t.user_attrs for t in b.trials)  # quadratic ran for b only
    assert not any("pid" in t.user_attrs for t in a.trials + c.trials)
    # segment-3 has no n_trials: only its timeout (counted, as in optimize, from the call,
    # Spark's start-up included) ended it, with every trial it started complete.
    assert all(t.state == TrialState.COMPLETE for t in c.trials)
    bar = capsys.readouterr().err
    assert "3 studies [2 workers]" in bar and "studies done=" in bar
    assert "segment-1: 100%" in bar and "segment-2: 100%" in bar  # a line per study too


def test_an_uncaught_error_stops_only_its_study_and_is_raised_naming_it(spark: object) -> None:
    good, bad = _studies(["good", "bad"])
    executor = SparkExecutor(spark, n_workers=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no data for this segment") as info:
        executor.optimize_many([good, bad], _objectives.fails_in_bad_segment, n_trials=8)
    assert "study 'bad'" in " ".join(getattr(info.value, "__notes__", []))
    assert states_of(good) == {"COMPLETE": 8}
    assert bad.trials[1].state == TrialState.FAIL
    assert len(bad.trials) < 8
    assert all(t.state != TrialState.RUNNING for t in bad.trials)


def test_a_stuck_trial_of_a_failed_study_is_failed_and_the_pool_goes_on(spark: object) -> None:
    good, bad = _studies(["good", "bad"])
    executor = SparkExecutor(  # type: ignore[arg-type]
        spark,
        n_workers=2,
        stuck_grace=1.0,
        trial_timeout=60.0,  # its worker process then exits once the driver failed its trial
        heartbeat_interval=0.5,
        heartbeat_grace=10.0,
    )
    with pytest.raises(ValueError, match="no data for this segment"):
        executor.optimize_many([good, bad], _objectives.stuck_then_fails_in_bad, n_trials=6)
    assert states_of(good) == {"COMPLETE": 6}
    stuck = bad.trials[0]
    assert stuck.state == TrialState.FAIL
    assert "another trial of its study raised" in stuck.system_attrs["optuna_spark:fail_reason"]
    assert bad.trials[1].state == TrialState.FAIL and len(bad.trials) == 2
