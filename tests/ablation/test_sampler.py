"""LOCOSampler: each (arm, repeat) exactly once, paired seeds, the study ends by itself."""

from __future__ import annotations

import collections
import logging
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import get_arm
from optuna_spark.ablation import is_enabled
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from tests._helpers import Workers
from tests._helpers import make_backend
from tests.ablation import _objectives as o

LABELS = [
    "base",
    "feature:area",
    "feature:floors",
    "feature:noise",
    "layer:dense_2",
    "group:head",
    "component:augment",
]


def _sampler(**kwargs: Any) -> LOCOSampler:
    args: dict[str, Any] = {
        "features": o.FEATURES,
        "layers": ["dense_2"],
        "layer_groups": {"head": "head_"},
        "components": ["augment"],
        "n_repeats": 3,
        "seed": 0,
    }
    args.update(kwargs)
    return LOCOSampler(**args)


def _assert_each_pair_once(study: optuna.Study, sampler: LOCOSampler) -> None:
    """Every (arm, repeat) ran once; any other trial is a surplus that ran nothing."""
    ran = [t for t in study.trials if "loco_arm" in t.user_attrs]
    pairs = collections.Counter((t.params["loco_arm"], t.params["loco_repeat"]) for t in ran)
    expected = {(arm, r) for arm in sampler.arms for r in range(sampler.n_repeats)}
    assert set(pairs) == expected
    assert set(pairs.values()) == {1}, [p for p, n in pairs.items() if n > 1]
    assert all(t.state == TrialState.COMPLETE for t in ran)
    assert all("loco_duplicate" not in t.user_attrs for t in ran)
    surplus = [t for t in study.trials if "loco_arm" not in t.user_attrs]
    # A thread already asking when the last arm went out gets one surplus trial at most.
    assert len(surplus) < 4
    for t in surplus:
        assert t.state == TrialState.PRUNED
        assert t.user_attrs == {"loco_surplus": True}
        assert t.params == {}


# ---------------------------------------------------------------------------------------------
# Arguments.


def test_arms_in_order_with_labels() -> None:
    sampler = _sampler()
    assert list(sampler.arms) == LABELS
    assert sampler.n_trials == len(LABELS) * 3
    assert list(_sampler(include_base=False).arms) == LABELS[1:]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "at least one"),
        ({"features": ["a"], "n_repeats": 0}, ValueError, "n_repeats must be at least 1"),
        ({"features": ["a"], "n_repeats": 1.5}, TypeError, "n_repeats must be an int"),
        ({"features": ["a"], "n_repeats": True}, TypeError, "n_repeats must be an int"),
        ({"features": ["a"], "seed": "x"}, TypeError, "seed must be an int"),
        ({"features": "area"}, TypeError, r"did you mean features=\['area'\]"),
        ({"features": ["a", "a"]}, ValueError, "lists 'a' twice"),
        ({"features": [""]}, ValueError, "non-empty strings"),
        ({"features": ["a"], "components": ["a"]}, ValueError, "as a feature and as a component"),
        ({"layers": ["d"], "layer_groups": {"d": ["x"]}}, ValueError, "as a layer and as a group"),
        ({"layer_groups": {"g": []}}, ValueError, "has no layers"),
        ({"layer_groups": {"g": ""}}, ValueError, "empty prefix"),
        ({"layer_groups": ["g"]}, TypeError, "layer_groups must map"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LOCOSampler(**kwargs)


def test_layer_group_patterns() -> None:
    sampler = LOCOSampler(layer_groups={"head": "head_", "pair": ["a", "b_*"], "star": "x*"})
    assert sampler.fixed_trial("group:head").user_attrs["loco_removes"] == ["head_*"]
    assert sampler.fixed_trial("group:pair").user_attrs["loco_removes"] == ["a", "b_*"]
    assert sampler.fixed_trial("group:star").user_attrs["loco_removes"] == ["x*"]


def test_seeds_are_distinct_per_repeat_reproducible_and_shared_by_arms() -> None:
    sampler = _sampler(n_repeats=5, seed=7)
    assert len(set(sampler.seeds)) == 5
    assert sampler.seeds == _sampler(n_repeats=5, seed=7).seeds
    assert sampler.seeds != _sampler(n_repeats=5, seed=8).seeds
    assert all(0 <= s < 2**31 for s in sampler.seeds)

    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    for t in study.trials:
        assert t.user_attrs["loco_seed"] == sampler.seeds[t.user_attrs["loco_repeat"]]


# ---------------------------------------------------------------------------------------------
# Exactness in one process.


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n_jobs", [1, 4])
def test_each_arm_and_repeat_exactly_once_and_the_study_ends_by_itself(n_jobs: int) -> None:
    sampler = _sampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss, n_trials=None, n_jobs=n_jobs)  # ends only because the sampler stops

    _assert_each_pair_once(study, sampler)
    if n_jobs == 1:
        assert len(study.trials) == sampler.n_trials == 21
    assert sampler.is_exhausted(study)
    if n_jobs > 1:
        assert len({t.user_attrs["thread"] for t in study.trials}) > 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_exactly_once_with_persistent_storages(backend: str, tmp_path: Path) -> None:
    sampler = _sampler(n_repeats=2)
    study = optuna.create_study(storage=make_backend(backend, tmp_path), sampler=sampler)
    study.optimize(o.loss, n_jobs=2)
    _assert_each_pair_once(study, sampler)


def test_repeats_are_handed_out_in_order() -> None:
    sampler = _sampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    order = [(t.params["loco_arm"], t.params["loco_repeat"]) for t in study.trials]
    assert order == [(arm, r) for r in range(3) for arm in LABELS]


def test_n_trials_stops_early_and_a_second_optimize_continues() -> None:
    sampler = _sampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss, n_trials=5)
    assert len(study.trials) == 5
    assert not sampler.is_exhausted(study)
    study.optimize(o.loss)
    _assert_each_pair_once(study, sampler)


def test_is_exhausted_counts_running_trials() -> None:
    sampler = _sampler(n_repeats=1)
    study = optuna.create_study(sampler=sampler)
    trials = []
    for _ in range(len(LABELS)):
        assert not sampler.is_exhausted(study)
        trials.append(study.ask())
    assert sampler.is_exhausted(study)  # all running, none finished
    assert {t.user_attrs["loco_arm"] for t in trials} == set(LABELS)
    for t in trials:
        study.tell(t, 1.0)  # the last tell must not raise: study.stop() is guarded
    assert sampler.is_exhausted(study)


def test_ask_and_tell_loop_until_exhausted() -> None:
    sampler = _sampler(n_repeats=2)
    study = optuna.create_study(sampler=sampler)
    while not sampler.is_exhausted(study):
        trial = study.ask()
        study.tell(trial, o.loss(trial))
    _assert_each_pair_once(study, sampler)


def test_a_waiting_trial_keeps_it_not_exhausted() -> None:
    sampler = _sampler(n_repeats=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    assert sampler.is_exhausted(study)
    study.enqueue_trial({"loco_arm": "feature:area", "loco_repeat": 0})
    assert not sampler.is_exhausted(study)
    study.optimize(o.loss)
    assert sampler.is_exhausted(study)
    rerun = study.trials[-1]
    assert rerun.params == {"loco_arm": "feature:area", "loco_repeat": 0}
    assert rerun.user_attrs["loco_duplicate"] is True


def test_enqueued_arm_is_honoured() -> None:
    sampler = _sampler(n_repeats=2)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"loco_arm": "component:augment", "loco_repeat": 1})
    study.enqueue_trial({"loco_arm": "feature:area"})  # first free repeat of that arm
    study.optimize(o.loss)
    assert study.trials[0].params == {"loco_arm": "component:augment", "loco_repeat": 1}
    assert study.trials[1].params == {"loco_arm": "feature:area", "loco_repeat": 0}
    _assert_each_pair_once(study, sampler)


def test_an_exhausted_study_gets_one_surplus_trial_that_runs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sampler = _sampler(n_repeats=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    n = len(study.trials)
    calls = []

    def objective(trial: optuna.Trial) -> float:
        calls.append(trial.number)
        return o.loss(trial)

    with caplog.at_level(logging.WARNING, logger="optuna_spark.ablation"):
        study.optimize(objective, n_jobs=2)  # stops by itself
    assert len(study.trials) in (n + 1, n + 2)  # one per thread at most
    for t in study.trials[n:]:
        assert t.state == TrialState.PRUNED
        assert t.user_attrs == {"loco_surplus": True}
    assert "has already run every (arm, repeat)" in caplog.text
    # The objective was entered but stopped at get_arm, before any work.
    assert len(calls) == len(study.trials) - n


def test_a_surplus_trial_is_pruned_even_without_get_arm() -> None:
    sampler = _sampler(n_repeats=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    study.optimize(lambda t: float(len(t.suggest_categorical("loco_arm", sampler.arms))))
    assert study.trials[-1].state == TrialState.PRUNED


def test_failed_trials_take_their_arm_and_the_study_still_ends() -> None:
    sampler = _sampler(n_repeats=2)
    study = optuna.create_study(sampler=sampler)

    def flaky(trial: optuna.Trial) -> float:
        if get_arm(trial).name == "floors":
            raise ValueError("boom")
        return o.loss(trial)

    study.optimize(flaky, catch=(ValueError,))
    assert len(study.trials) == sampler.n_trials
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.params["loco_arm"] for t in failed] == ["feature:floors"] * 2


def test_a_resumed_study_keeps_the_seeds_it_ran_with(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(sampler=_sampler(seed=1))
    study.optimize(o.loss, n_trials=3)
    seed_0 = study.trials[0].user_attrs["loco_seed"]
    study.sampler = _sampler(seed=2)
    with caplog.at_level(logging.WARNING, logger="optuna_spark.ablation"):
        study.optimize(o.loss)
    assert {t.user_attrs["loco_seed"] for t in study.trials if t.params["loco_repeat"] == 0} == {
        seed_0
    }
    assert "keeps using it" in caplog.text


def test_other_parameters_are_refused() -> None:
    study = optuna.create_study(sampler=_sampler())

    def objective(trial: optuna.Trial) -> float:
        get_arm(trial)
        return trial.suggest_float("lr", 0.0, 1.0)

    with pytest.raises(ValueError, match="only samples 'loco_arm' and 'loco_repeat'"):
        study.optimize(objective, n_trials=1)


# ---------------------------------------------------------------------------------------------
# What a trial shows.


def test_arm_in_user_attrs_params_and_trials_dataframe() -> None:
    sampler = _sampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss, n_trials=len(LABELS))
    trial = study.trials[5]
    assert trial.params == {"loco_arm": "group:head", "loco_repeat": 0}
    attrs = trial.user_attrs
    assert attrs["loco_arm"] == "group:head"
    assert (attrs["loco_kind"], attrs["loco_name"]) == ("group", "head")
    assert attrs["loco_removes"] == ["head_*"]
    assert (attrs["loco_repeat"], attrs["loco_seed"]) == (0, sampler.seeds[0])
    assert attrs["loco_arms"] == LABELS
    df = study.trials_dataframe()
    assert list(df["params_loco_arm"]) == LABELS
    assert list(df["user_attrs_loco_kind"]) == [
        "base", "feature", "feature", "feature", "layer", "group", "component"
    ]  # fmt: skip


def test_get_arm_and_is_enabled() -> None:
    sampler = _sampler()
    arm = get_arm(sampler.fixed_trial("group:head", repeat=2))
    assert (arm.kind, arm.name, arm.repeat, arm.seed) == ("group", "head", 2, sampler.seeds[2])
    assert arm.label == "group:head"
    assert arm.layers == ("head_*",)
    assert arm.feature is None
    assert not arm.is_enabled("head")
    assert arm.is_enabled("area") and arm.is_enabled("augment") and arm.is_enabled("dense_2")
    with pytest.raises(ValueError, match="'augmnt' is not ablated"):
        arm.is_enabled("augmnt")

    base = get_arm(sampler.fixed_trial())
    assert base.is_base and all(base.is_enabled(n) for n in ["area", "head", "augment"])
    trial = sampler.fixed_trial("component:augment")
    assert not is_enabled(trial, "augment")
    assert is_enabled(trial, "area")


def test_a_group_arm_also_leaves_out_its_ablated_layers() -> None:
    sampler = LOCOSampler(layers=["head_1", "body"], layer_groups={"head": "head_"})
    arm = get_arm(sampler.fixed_trial("group:head"))
    assert not arm.is_enabled("head_1")
    assert arm.is_enabled("body")


def test_get_arm_refuses_a_trial_of_another_sampler() -> None:
    with pytest.raises(ValueError, match=r"must be optuna_spark\.ablation\.LOCOSampler"):
        get_arm(optuna.trial.FixedTrial({"x": 1.0}))
    with pytest.raises(TypeError, match="Expected an optuna trial or an Arm"):
        is_enabled("base", "area")  # type: ignore[arg-type]


def test_fixed_trial_validation() -> None:
    sampler = _sampler()
    with pytest.raises(ValueError, match="Unknown arm 'feature:price'"):
        sampler.fixed_trial("feature:price")
    with pytest.raises(ValueError, match="repeat must be in"):
        sampler.fixed_trial("base", repeat=3)


def test_pickles_and_works_after() -> None:
    sampler = pickle.loads(pickle.dumps(_sampler(n_repeats=1)))
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss, n_jobs=2)
    _assert_each_pair_once(study, sampler)


# ---------------------------------------------------------------------------------------------
# The package's driver: trials asked under its lock, objectives in worker threads (no Spark).


@pytest.mark.timeout(60)
def test_exactly_once_through_the_driver_with_four_workers(
    server: StudyServer, open_run: Callable[..., StudyRun], workers: Workers
) -> None:
    sampler = _sampler()
    study = optuna.create_study(storage=server.storage, sampler=sampler)
    run = open_run(study, n_trials=None)
    workers.start(WorkerSpec(server.endpoint, run.run_id), o.loss, 4)

    assert run.wait(45), "the run did not end by itself once every arm had run"
    workers.join()
    _assert_each_pair_once(study, sampler)
    assert len({t.user_attrs["thread"] for t in study.trials}) > 1
    assert run.error is None
    # No trial was told to stop: the sampler never stopped the study while trials ran.
    assert all("optuna_spark:interrupted" not in t.system_attrs for t in study.trials)


def test_threads_of_one_process_never_share_an_arm() -> None:
    # Many concurrent asks, no objective: the lock alone must make the assignment exact.
    sampler = _sampler(n_repeats=4)
    study = optuna.create_study(sampler=sampler)
    asked: list[optuna.Trial] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        for _ in range(sampler.n_trials // 8 + 1):
            if sampler.is_exhausted(study):
                return
            asked.append(study.ask())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assigned = [t for t in asked if "loco_arm" in t.user_attrs]
    pairs = [(t.user_attrs["loco_arm"], t.user_attrs["loco_repeat"]) for t in assigned]
    assert len(pairs) == len(set(pairs)) == sampler.n_trials
    assert all(t.user_attrs == {"loco_surplus": True} for t in asked if t not in assigned)
