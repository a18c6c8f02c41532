"""Ablation policies: pairs, leave-one-in, your own policy, adaptive repeats, on threads and
through the package's driver (objectives in worker threads, no Spark)."""

from __future__ import annotations

import collections
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from scipy import stats

from optuna_spark._waiting import never_wait
from optuna_spark.ablation import AblationHistory
from optuna_spark.ablation import AblationPath
from optuna_spark.ablation import AblationPolicy
from optuna_spark.ablation import AblationSampler
from optuna_spark.ablation import ArmSpec
from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablation_path_report
from optuna_spark.ablation import ablation_report
from optuna_spark.ablation import get_arm
from optuna_spark.ablation._sequential import look_points
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from tests._helpers import Workers
from tests.ablation import _objectives as o


def _pairs_run(study: optuna.Study) -> collections.Counter[tuple[str, int]]:
    ran = [t for t in study.trials if "loco_arm" in t.user_attrs]
    return collections.Counter(
        (t.user_attrs["loco_arm"], t.user_attrs["loco_repeat"]) for t in ran
    )


# ---------------------------------------------------------------------------------------------
# Leave-two-out: redundancy that single arms cannot see.


def redundant_loss(trial: optuna.trial.BaseTrial) -> float:
    """``twin_a`` and ``twin_b`` carry one signal (either is enough), ``signal`` its own,
    ``noise`` none; a large seed effect is shared by the arms of a repeat."""
    arm = get_arm(trial)
    rng = np.random.default_rng(arm.seed)
    loss = 10.0 + rng.normal(0.0, 2.0)
    if not arm.is_enabled("twin_a") and not arm.is_enabled("twin_b"):
        loss += 2.0
    if not arm.is_enabled("signal"):
        loss += 1.5
    return loss + np.random.default_rng([arm.seed, len(arm.left_out), 7]).normal(0.0, 0.05)


def test_pairs_are_arms_and_their_labels() -> None:
    sampler = LOCOSampler(features=["a", "b", "c"], pairs=True, seed=0)
    assert sampler.arms[4:] == ("pair:a+b", "pair:a+c", "pair:b+c")
    chosen = LOCOSampler(features=["a", "b", "c"], pairs=[("c", "a")], seed=0)
    assert chosen.arms[-1] == "pair:a+c"  # in the components' order
    arm = get_arm(chosen.fixed_trial("pair:a+c"))
    assert arm.kind == "pair" and arm.features == ("a", "c")
    assert not arm.is_enabled("a") and arm.is_enabled("b") and not arm.is_enabled("c")
    with pytest.raises(ValueError, match=r"read arm\.features"):
        _ = arm.feature


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ([("a", "z")], "'z', which is not a component"),
        ([("a", "a")], "two different components"),
        ([("a", "b"), ("b", "a")], "twice"),
        ([("a",)], "must be two names"),
        ("ab", "pairs must be True, False or a list"),
    ],
)
def test_invalid_pairs(pairs: Any, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        LOCOSampler(features=["a", "b"], pairs=pairs)


def test_leave_two_out_flags_the_redundant_pair_that_single_arms_miss() -> None:
    sampler = LOCOSampler(components=["twin_a", "twin_b", "signal", "noise"], pairs=True,
                          n_repeats=6, seed=3)  # fmt: skip
    study = optuna.create_study(sampler=sampler)
    study.optimize(redundant_loss, n_jobs=2)
    assert set(_pairs_run(study).values()) == {1} and len(_pairs_run(study)) == 11 * 6

    r = ablation_report(study).set_index("arm")
    assert not r.loc["component:twin_a", "significant"]
    assert not r.loc["component:twin_b", "significant"]
    assert r.loc["component:signal", "significant"]
    assert not r.loc["component:noise", "significant"]
    pair = r.loc["pair:twin_a+twin_b"]
    assert pair["significant"] and pair["finding"] == "redundant: keep one"
    assert pair["diff"] == pytest.approx(2.0, abs=0.1)
    assert pair["sum_of_singles"] == pytest.approx(0.0, abs=0.1)
    assert pair["interaction_ci_low"] < 2.0 < pair["interaction_ci_high"]
    assert pair["interaction_ci_low"] > 0
    # Additive pairs: no interaction, nothing flagged.
    additive = r.loc["pair:twin_a+signal"]
    assert additive["finding"] == ""
    assert additive["interaction_ci_low"] < 0 < additive["interaction_ci_high"]
    assert np.isnan(r.loc["component:signal", "interaction"])


# ---------------------------------------------------------------------------------------------
# Leave-one-in.


def test_leave_one_in_compares_each_component_alone_with_none() -> None:
    sampler = LOCOSampler(features=o.FEATURES, leave_one_in=True, n_repeats=4, seed=0)
    assert sampler.arms == ("none", "in:area", "in:floors", "in:noise", "base")
    none = get_arm(sampler.fixed_trial("none"))
    assert none.features == tuple(o.FEATURES) and none.kind == "none"
    only_area = get_arm(sampler.fixed_trial("in:area"))
    assert only_area.is_enabled("area") and not only_area.is_enabled("floors")

    def objective(trial: optuna.trial.BaseTrial) -> float:
        arm = get_arm(trial)
        shared = np.random.default_rng(arm.seed).normal(0.0, 1.0)
        return 20.0 + shared - sum(o.EFFECTS[f] for f in o.FEATURES if arm.is_enabled(f))

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective)
    report = ablation_report(study)
    assert report.attrs["reference"] == "none" and report.attrs["mode"] == "in"
    r = report.set_index("arm")
    assert list(report["arm"])[:3] == ["none", "base", "in:area"]
    assert r.loc["in:area", "importance"] == pytest.approx(3.0)  # helps: positive
    assert r.loc["in:floors", "importance"] == pytest.approx(1.0)
    assert r.loc["in:noise", "importance"] == pytest.approx(0.0, abs=1e-9)
    assert r.loc["in:area", "significant"] and not r.loc["in:noise", "significant"]


def test_leave_one_in_refuses_pairs() -> None:
    with pytest.raises(ValueError, match="pairs=False"):
        LOCOSampler(features=["a", "b"], leave_one_in=True, pairs=True)


# ---------------------------------------------------------------------------------------------
# Policies of your own.


class Cumulative(AblationPolicy):
    """Removes blocks one after another: base, -a, -a-b, -a-b-c."""

    def __init__(self, blocks: Sequence[str]) -> None:
        super().__init__(components=blocks)
        self.blocks = list(blocks)

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        out = [ArmSpec("base")]
        out += [ArmSpec(f"-{'-'.join(self.blocks[:i])}", tuple(self.blocks[:i]))
                for i in range(1, len(self.blocks) + 1)]  # fmt: skip
        return out


def blocks_loss(trial: optuna.trial.BaseTrial) -> float:
    arm = get_arm(trial)
    cost = {"a": 1.0, "b": 2.0, "c": 4.0}
    return sum(v for k, v in cost.items() if not arm.is_enabled(k)) + 0.01 * arm.repeat


def test_a_policy_of_your_own_runs_each_arm_and_repeat_once() -> None:
    sampler = AblationSampler(Cumulative(["a", "b", "c"]), n_repeats=3, seed=0)
    assert sampler.arms == ("base", "-a", "-a-b", "-a-b-c")
    study = optuna.create_study(sampler=sampler)
    study.optimize(blocks_loss, n_jobs=3)
    pairs = _pairs_run(study)
    assert set(pairs) == {(arm, r) for arm in sampler.arms for r in range(3)}
    assert set(pairs.values()) == {1}
    r = ablation_report(study).set_index("arm")
    assert r.loc["-a-b-c", "diff"] == pytest.approx(7.0)
    assert r.loc["-a-b", "kind"] == "custom" and r.loc["-a-b", "significant"]


class Misbehaving(AblationPolicy):
    adaptive = True

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(components=["a", "b"])
        self.answers = answers

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.mark.parametrize(
    ("answers", "error", "match"),
    [
        ([[ArmSpec("x", ("a",)), ArmSpec("x", ("b",))]], ValueError, "label 'x' twice"),
        ([[ArmSpec("x", ("z",))]], ValueError, r"leaves out \['z'\]"),
        ([["base"]], TypeError, "must return ArmSpec"),
        ([[ArmSpec("x", ("a",))], [ArmSpec("x", ("b",))]], ValueError, "changed arm 'x'"),
        ([[ArmSpec("x", ("a",))], [ArmSpec("y", ("b",))]], ValueError, "no longer returns"),
        ([[]], ValueError, "returned no arm"),
    ],
)
def test_a_misbehaving_policy_fails_the_study_with_what_it_did(
    answers: list[Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):  # when the sampler is made, or at the next ask
        study = optuna.create_study(sampler=AblationSampler(Misbehaving(answers)))
        study.optimize(blocks_loss, n_trials=3)


class ThenTheWorst(AblationPolicy):
    """Adaptive: one arm per component; once they all ran, the two worst left out together."""

    adaptive = True

    def __init__(self) -> None:
        super().__init__(components=["a", "b", "c"])

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        singles = [ArmSpec("base")] + [ArmSpec(f"-{c}", (c,)) for c in "abc"]
        if not all(history.is_settled(s.label) for s in singles):
            return singles
        worst = sorted("abc", key=lambda c: -history.mean(f"-{c}"))[:2]
        return [*singles, ArmSpec("-worst2", tuple(sorted(worst)))]


@pytest.mark.parametrize("n_jobs", [1, 4])
def test_an_adaptive_policy_adds_arms_from_results_and_threads_wait_for_them(n_jobs: int) -> None:
    sampler = AblationSampler(ThenTheWorst(), n_repeats=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(blocks_loss, n_jobs=n_jobs)
    pairs = _pairs_run(study)
    assert set(pairs.values()) == {1}
    assert {arm for arm, _ in pairs} == {"base", "-a", "-b", "-c", "-worst2"}
    assert get_arm(sampler.fixed_trial("-worst2")).left_out == ("b", "c")
    # The last arm started only after every single arm had finished (the workers waited).
    worst = [t for t in study.trials if t.user_attrs.get("loco_arm") == "-worst2"]
    singles = [
        t for t in study.trials if t.user_attrs.get("loco_arm") in ("base", "-a", "-b", "-c")
    ]
    assert min(t.datetime_start for t in worst) >= max(t.datetime_complete for t in singles)
    # Threads waited rather than getting trials with nothing to run.
    assert all("loco_surplus" not in t.user_attrs for t in study.trials[: len(pairs)])
    assert len(study.trials) - len(pairs) < n_jobs


# ---------------------------------------------------------------------------------------------
# Adaptive repeats.


def mixed_loss(trial: optuna.trial.BaseTrial) -> float:
    """``big`` costs 5 (decided at once), ``none`` nothing (undecided until the maximum)."""
    arm = get_arm(trial)
    shared = np.random.default_rng(arm.seed).normal(0.0, 1.0)
    own = np.random.default_rng([arm.seed, len(arm.label)]).normal(0.0, 0.3)
    return 10.0 + shared + own + (5.0 if not arm.is_enabled("big") else 0.0)


@pytest.mark.parametrize("n_jobs", [1, 3])
def test_adaptive_repeats_stop_decided_arms_and_keep_the_pairs(n_jobs: int) -> None:
    sampler = LOCOSampler(components=["big", "none"], n_repeats=(3, 12), futility=False, seed=0)
    assert sampler.n_repeats == (3, 12) and sampler.n_trials == 3 * 12
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed_loss, n_jobs=n_jobs)
    pairs = _pairs_run(study)
    assert set(pairs.values()) == {1}
    repeats = collections.Counter(arm for arm, _ in pairs)
    assert repeats["component:none"] == 12  # never decided: up to the maximum
    assert 3 <= repeats["component:big"] <= 5 + n_jobs  # decided at the first looks (3, 5)
    assert repeats["base"] == 12  # paired with every repeat of every arm
    for arm, count in repeats.items():  # repeats are handed out in order
        assert {r for a, r in pairs if a == arm} == set(range(count))

    report = ablation_report(study)
    assert report.attrs["looks"] == 4  # after 3, 5, 8 and 12 pairs
    r = report.set_index("arm")
    assert r.loc["component:big", "stopped"] == "significant"
    assert r.loc["component:big", "stopped_at"] in (3, 5)
    assert r.loc["component:none", "stopped"] == "max repeats"
    assert r.loc["component:none", "stopped_at"] == 12
    assert r.loc["component:big", "significant"] and not r.loc["component:none", "significant"]
    # The report's p-value carries the correction for looking four times.
    d = [
        t_none.value - t_base.value
        for t_none in study.trials
        for t_base in study.trials
        if t_none.user_attrs.get("loco_arm") == "component:none"
        and t_base.user_attrs.get("loco_arm") == "base"
        and t_none.user_attrs["loco_seed"] == t_base.user_attrs["loco_seed"]
    ]
    plain = stats.ttest_1samp(d, 0.0).pvalue
    assert r.loc["component:none", "p_value"] == pytest.approx(min(1.0, 4 * plain))


def test_look_points() -> None:
    assert look_points(3, 20) == [3, 5, 8, 13, 20]
    assert look_points(2, 3) == [2, 3]
    assert look_points(5, 6) == [5, 6]


def test_futility_stops_arms_that_the_maximum_could_not_decide() -> None:
    sampler = LOCOSampler(components=["big", "none"], n_repeats=(3, 40), seed=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed_loss)
    r = ablation_report(study).set_index("arm")
    assert r.loc["component:none", "stopped"] == "futile"
    assert r.loc["component:none", "stopped_at"] < 40
    assert not r.loc["component:none", "significant"]
    assert len(study.trials) < 2 * 40


def test_min_effect_stops_negligible_arms_early() -> None:
    sampler = LOCOSampler(
        components=["big", "none"], n_repeats=(3, 20), min_effect=2.0, futility=False, seed=0
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed_loss)
    r = ablation_report(study).set_index("arm")
    assert r.loc["component:none", "stopped"] == "negligible"
    assert r.loc["component:none", "stopped_at"] < 20
    assert len(study.trials) < 3 * 20


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_repeats": (3, 3)}, ValueError, "2 <= min < max"),
        ({"n_repeats": (1, 5)}, ValueError, "2 <= min < max"),
        ({"n_repeats": (3,)}, TypeError, "an int or a"),
        ({"n_repeats": (3, 8), "alpha": 1.5}, ValueError, "alpha must be in"),
        ({"n_repeats": (3, 8), "min_effect": -1.0}, ValueError, "min_effect must be"),
    ],
)
def test_invalid_adaptive_repeats(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LOCOSampler(components=["a"], **kwargs)


def test_adaptive_repeats_need_a_policy_known_in_advance() -> None:
    with pytest.raises(ValueError, match="known in advance"):
        AblationSampler(ThenTheWorst(), n_repeats=(2, 5))


def test_a_resumed_adaptive_study_keeps_its_decisions() -> None:
    kwargs: dict[str, Any] = {"n_repeats": (3, 8), "futility": False, "seed": 0}
    sampler = LOCOSampler(components=["big", "none"], **kwargs)
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed_loss, n_trials=9)
    again = LOCOSampler(components=["big", "none"], **kwargs)
    resumed = optuna.load_study(study_name=study.study_name, storage=study._storage,
                                sampler=again)  # fmt: skip
    resumed.optimize(mixed_loss)
    pairs = _pairs_run(resumed)
    assert set(pairs.values()) == {1}
    assert collections.Counter(a for a, _ in pairs)["component:none"] == 8
    assert again.is_exhausted(resumed)


# ---------------------------------------------------------------------------------------------
# Through the package's driver: a worker whose next trial depends on results waits for them.


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["adaptive repeats", "adaptive policy"])
def test_adaptive_ablations_through_the_driver_with_four_workers(
    kind: str, server: StudyServer, open_run: Callable[..., StudyRun], workers: Workers
) -> None:
    if kind == "adaptive repeats":
        sampler: AblationSampler = LOCOSampler(
            components=["big", "none"], n_repeats=(3, 10), futility=False, seed=0
        )
        objective = mixed_loss
    else:
        sampler = AblationSampler(ThenTheWorst(), n_repeats=3, seed=0)
        objective = blocks_loss
    study = optuna.create_study(storage=server.storage, sampler=sampler)
    run = open_run(study, n_trials=None)
    workers.start(WorkerSpec(server.endpoint, run.run_id), objective, 4)

    assert run.wait(75), "the run did not end by itself"
    workers.join()
    assert run.error is None
    pairs = _pairs_run(study)
    assert set(pairs.values()) == {1}
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # no surplus trial
    assert len(study.trials) == len(pairs)
    if kind == "adaptive policy":
        assert {arm for arm, _ in pairs} == {"base", "-a", "-b", "-c", "-worst2"}
    else:
        assert collections.Counter(a for a, _ in pairs)["component:none"] == 10


# ---------------------------------------------------------------------------------------------
# Edge cases: a driver never waits inside ask, retries, conditional parameters, directions.


def test_a_sampler_asked_for_a_driver_never_waits() -> None:
    # A driver holds its sampler lock while it asks, and the running trials need it: when the
    # sampler finds nothing to hand out after all, it must answer at once (a surplus trial).
    sampler = AblationSampler(ThenTheWorst(), n_repeats=1, seed=0)
    study = optuna.create_study(sampler=sampler)
    running = [study.ask() for _ in range(4)]  # base, -a, -b, -c: all running
    assert sampler.must_wait(study)
    with never_wait():
        surplus = study.ask()
    assert surplus.user_attrs == {"loco_surplus": True}
    for trial in running:
        study.tell(trial, blocks_loss(trial))
    assert not sampler.must_wait(study)
    assert study.ask().user_attrs["loco_arm"] == "-worst2"


def test_additive_pairs_are_not_called_redundant() -> None:
    def additive(trial: optuna.trial.BaseTrial) -> float:
        arm = get_arm(trial)
        noise = np.random.default_rng([arm.seed, len(arm.label)]).normal(0.0, 0.7)
        return noise + sum(1.0 for c in "ab" if not arm.is_enabled(c))

    flagged = 0
    for seed in range(40):
        sampler = LOCOSampler(components=["a", "b"], pairs=True, n_repeats=5, seed=seed)
        study = optuna.create_study(sampler=sampler)
        study.optimize(additive)
        report = ablation_report(study).set_index("arm")
        flagged += report.loc["pair:a+b", "finding"] == "redundant: keep one"
    assert flagged <= 4  # an interval's error rate, not the 40% of "neither single matters"


def test_a_retried_candidate_cannot_change_a_decided_round_of_the_path() -> None:
    policy = AblationPath({"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 1.0})
    study = optuna.create_study(sampler=AblationSampler(policy, seed=0))
    values = {"base": 10.0, "target": 0.0, "flip:x": 5.0, "flip:y": 7.0}
    failed = None
    while not study.sampler.is_exhausted(study):  # type: ignore[attr-defined]
        trial = study.ask()
        arm = trial.user_attrs["loco_arm"]
        if arm == "flip:x" and failed is None:
            failed = trial
            study.tell(trial, state=TrialState.FAIL)  # the round is decided without it: y
            continue
        study.tell(trial, values[arm])
    # A retry of the failed candidate, run later, finds x better: the path keeps y first.
    study.enqueue_trial({"loco_arm": "flip:x", "loco_repeat": 0})
    trial = study.ask()
    study.tell(trial, values["flip:x"])
    assert study.sampler.is_exhausted(study)  # type: ignore[attr-defined]
    report = ablation_path_report(study)
    assert list(report["param"]) == ["", "y", "x"]


def test_the_path_steps_only_through_parameters_both_configurations_set() -> None:
    policy = AblationPath(
        {"opt": "sgd", "lr": 0.1, "momentum": 0.9}, {"opt": "adam", "lr": 0.01, "beta": 0.9}
    )
    assert policy.params == ("opt", "lr")
    base = policy.config(())
    assert base == {"opt": "sgd", "lr": 0.1, "momentum": 0.9, "beta": 0.9}
    with pytest.raises(ValueError, match="no parameter to different values"):
        AblationPath({"a": 1, "b": 2}, {"a": 1, "c": 3})


def test_the_path_refuses_a_study_of_the_other_direction() -> None:
    tuned = optuna.create_study(direction="maximize")
    tuned.enqueue_trial({"x": 0.0})
    tuned.enqueue_trial({"x": 1.0})
    tuned.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    sampler = AblationSampler(AblationPath.from_study(tuned))
    with pytest.raises(ValueError, match="direction='maximize'"):
        optuna.create_study(sampler=sampler).optimize(lambda t: t.suggest_float("x", 0, 1))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0))
    assert list(ablation_path_report(study)["param"]) == ["", "x"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_repeats": (2, 4), "include_base": False}, "does not run"),
        ({"n_repeats": 4, "min_effect": 0.5}, "only adaptive repeats"),
    ],
)
def test_adaptive_repeats_arguments_that_cannot_work(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LOCOSampler(features=["a", "b"], **kwargs)


def test_n_repeats_may_be_a_list() -> None:
    assert LOCOSampler(features=["a"], n_repeats=[2, 6]).n_repeats == (2, 6)  # type: ignore[arg-type]
