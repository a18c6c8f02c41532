"""ShapleyAblation and shapley_report: exact values and interactions on a known game,
efficiency, the sampled design's unbiasedness, intervals, resume, and Spark workers."""

from __future__ import annotations

import itertools
import math
import random
import statistics
import zlib
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_spark.ablation import AblationSampler
from optuna_spark.ablation import ShapleyAblation
from optuna_spark.ablation import get_arm
from optuna_spark.ablation import plot_shapley
from optuna_spark.ablation import shapley_report
from tests.ablation import _shapley_game as g

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _run(policy: ShapleyAblation, n_repeats: int = 1, noise: float = 0.0, **kw: object):  # type: ignore[no-untyped-def]
    study = optuna.create_study(
        direction="maximize", sampler=AblationSampler(policy, n_repeats=n_repeats, seed=0), **kw
    )
    study.optimize(g.objective(noise, policy.names))
    return study


def test_the_exact_design_gives_the_shapley_values_and_interactions_of_the_game() -> None:
    names = g.COMPONENTS[:6]
    study = _run(ShapleyAblation(components=names))
    assert len(study.trials) == 2**6  # every subset once
    report = shapley_report(study)
    exact = g.exact_shapley(names)
    for c in names:
        assert report.loc[c, "shapley"] == pytest.approx(exact[c])
    # Efficiency: they add up to all components against none, and the report says so.
    assert report["shapley"].sum() == pytest.approx(g.value(names) - g.value([]))
    assert report.attrs["total"] == pytest.approx(g.value(names))
    assert "add up to" in report.attrs["efficiency"]
    pairs = report.attrs["interactions"]["interaction"]
    assert pairs[("c", "d")] == pytest.approx(-1.0)  # redundant: either one will do
    assert pairs[("e", "f")] == pytest.approx(1.0)  # synergy: only together
    assert pairs[("a", "b")] == pytest.approx(0.0)  # independent


def test_the_sampled_design_is_unbiased_and_exactly_efficient() -> None:
    names = g.COMPONENTS
    exact = g.exact_shapley(names)
    estimates = {c: [] for c in names}  # type: dict[str, list[float]]
    for seed in range(40):
        policy = ShapleyAblation(components=names, max_arms=64, order=1, seed=seed)
        assert len(policy.arms(None)) <= 64  # type: ignore[arg-type]
        report = shapley_report(_run(policy))
        assert report["shapley"].sum() == pytest.approx(g.value(names) - g.value([]))
        for c in names:
            estimates[c].append(report.loc[c, "shapley"])
    for c in names:  # the mean over designs is the exact value (unbiased)
        mean = statistics.mean(estimates[c])
        se = statistics.stdev(estimates[c]) / len(estimates[c]) ** 0.5
        assert abs(mean - exact[c]) <= 4 * se + 1e-9, (c, mean, exact[c])


def _two_way_game(names: list[str], seed: int) -> dict[frozenset[str], float]:
    """A random game with interactions of order two only, on every subset."""
    rng = random.Random(seed)
    main = {c: rng.uniform(-1, 1) for c in names}
    pair = {p: rng.choice([0.0, rng.uniform(-1, 1)]) for p in itertools.combinations(names, 2)}
    return {
        frozenset(s): sum(main[c] for c in s) + sum(pair[p] for p in itertools.combinations(s, 2))
        for k in range(len(names) + 1)
        for s in itertools.combinations(names, k)
    }


@pytest.mark.parametrize("n", [5, 6, 9])
def test_on_a_budget_a_second_order_game_gets_its_exact_values_and_interactions(n: int) -> None:
    names = [f"c{i}" for i in range(n)]
    game = _two_way_game(names, seed=n)

    def objective(trial: optuna.trial.BaseTrial) -> float:
        arm = get_arm(trial)
        return game[frozenset(c for c in names if arm.is_enabled(c))]

    def run(max_arms: int | None) -> tuple[object, int]:
        sampler = AblationSampler(ShapleyAblation(components=names, max_arms=max_arms), seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective)
        return shapley_report(study), len(study.trials)

    fewest = (2 * n + 2 + n * (n - 1) // 2) + (2 * n - 6)  # the fit's, and one unit's new
    (exact, _), (report, ran) = run(None), run(fewest)
    assert ran <= fewest < 2**n  # a budget, not every subset
    pairs, truth = report.attrs["interactions"], exact.attrs["interactions"]  # type: ignore[attr-defined]
    assert "second-order fit" in pairs.attrs["estimator"]
    assert pairs["interaction"].to_numpy() == pytest.approx(truth["interaction"].to_numpy())
    for c in names:  # antithetic permutations are exact for such a game too
        assert report.loc[c, "shapley"] == pytest.approx(exact.loc[c, "shapley"])  # type: ignore[attr-defined,index]


def test_on_a_budget_the_redundant_and_synergistic_pairs_are_flagged() -> None:
    policy = ShapleyAblation(components=g.COMPONENTS, max_arms=64, seed=1)  # of 256
    study = _run(policy, n_repeats=3, noise=0.1)
    assert len({t.user_attrs["loco_arm"] for t in study.trials}) <= 64
    report = shapley_report(study)
    exact = g.exact_shapley(g.COMPONENTS)
    for c in g.COMPONENTS:
        assert report.loc[c, "ci_low"] <= exact[c] <= report.loc[c, "ci_high"], c
    pairs = report.attrs["interactions"]
    flagged = pairs[pairs["excludes_zero"]]
    assert list(flagged.index) == [("c", "d"), ("e", "f")]  # and no other pair
    assert flagged.loc[("c", "d"), "ci_high"] < 0 < flagged.loc[("e", "f"), "ci_low"]
    # The other 26 pairs' 95% intervals (not corrected) hold 0, but for one at most.
    assert ((pairs["ci_low"] <= 0) & (pairs["ci_high"] >= 0)).sum() >= len(pairs) - 3


def test_on_a_budget_a_three_way_interaction_widens_the_intervals_instead_of_flagging() -> None:
    def value(present: set[str]) -> float:  # a, b and h bring one more together
        return g.value(present) + (1.0 if {"a", "b", "h"} <= present else 0.0)

    def objective(noise: float):  # type: ignore[no-untyped-def]
        def run(trial: optuna.trial.BaseTrial) -> float:
            arm = get_arm(trial)
            present = {c for c in g.COMPONENTS if arm.is_enabled(c)}
            key = zlib.crc32(",".join([str(arm.seed), *sorted(present)]).encode())
            return value(present) + random.Random(key).gauss(0, noise)

        return run

    def study_of(max_arms: int | None, n_repeats: int, noise: float) -> optuna.Study:
        policy = ShapleyAblation(components=g.COMPONENTS, max_arms=max_arms, seed=2)
        sampler = AblationSampler(policy, n_repeats=n_repeats, seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective(noise))
        return study

    exact = shapley_report(study_of(None, 1, 0.0))
    truth = exact.attrs["interactions"]["interaction"]
    assert truth[("a", "b")] == pytest.approx(0.5)  # the three-way term, shared by its pairs
    report = shapley_report(study_of(64, 3, 0.05))
    for c in g.COMPONENTS:  # the fit's values: their intervals hold the exact ones too
        assert report.loc[c, "ci_low"] <= exact.loc[c, "shapley"] <= report.loc[c, "ci_high"]
    pairs = report.attrs["interactions"]
    covered = (pairs["ci_low"] <= truth) & (truth <= pairs["ci_high"])
    assert covered.all(), pairs[~covered]
    assert not (pairs["excludes_zero"] & (truth == 0)).any()  # no pair flagged wrongly


def test_intervals_from_paired_repeats_cover_the_noise_free_values() -> None:
    names = g.COMPONENTS[:5]
    report = shapley_report(_run(ShapleyAblation(components=names), n_repeats=6, noise=0.1))
    exact = g.exact_shapley(names)
    for c in names:
        assert report.loc[c, "ci_low"] <= exact[c] <= report.loc[c, "ci_high"], c
        assert report.loc[c, "ci_high"] - report.loc[c, "ci_low"] < 0.5
    pairs = report.attrs["interactions"]
    assert pairs.loc[("c", "d"), "excludes_zero"] and pairs.loc[("c", "d"), "ci_high"] < 0
    assert not pairs.loc[("a", "b"), "excludes_zero"]


def test_a_minimized_objective_gives_positive_values_to_what_lowers_it() -> None:
    names = ["a", "b", "c"]
    sampler = AblationSampler(ShapleyAblation(components=names), n_repeats=1, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(lambda trial: -g.objective(0.0, names)(trial))  # a loss
    report = shapley_report(study)
    expected = g.exact_shapley(names)["a"]
    assert expected > 0 and report.loc["a", "shapley"] == pytest.approx(expected)


def test_a_study_resumed_by_a_new_sampler_runs_each_subset_once(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'shapley.db'}"
    names = ["a", "b", "c", "d"]

    def sampler() -> AblationSampler:
        return AblationSampler(ShapleyAblation(components=names), n_repeats=2, seed=0)

    study = optuna.create_study(
        study_name="s", storage=storage, direction="maximize", sampler=sampler()
    )
    study.optimize(g.objective(0.0, names), n_trials=11)  # the driver "dies" here
    again = optuna.load_study(study_name="s", storage=storage, sampler=sampler())
    again.optimize(g.objective(0.0, names))
    assert len(again.trials) == 16 * 2
    report = shapley_report(again)
    exact = g.exact_shapley(names)
    assert all(report.loc[c, "shapley"] == pytest.approx(exact[c]) for c in names)


def test_bad_designs_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="at least two components"):
        ShapleyAblation(components=["a"])
    with pytest.raises(ValueError, match=r"at least 56 \(the fit's 46 subsets .* order=1"):
        ShapleyAblation(components=g.COMPONENTS, max_arms=50)  # order=2 by default
    with pytest.raises(ValueError, match="at least 4 "):  # two components: every subset
        ShapleyAblation(components=["a", "b"], max_arms=3)
    with pytest.raises(ValueError, match="at least 16"):
        ShapleyAblation(components=g.COMPONENTS, max_arms=10, order=1)
    with pytest.raises(ValueError, match="set max_arms"):
        ShapleyAblation(components=[f"c{i}" for i in range(11)])
    with pytest.raises(ValueError, match="not a Shapley ablation"):
        shapley_report(optuna.create_study())


def test_the_plot_shows_each_component_with_its_interval() -> None:
    names = ["a", "b", "c"]
    figure = plot_shapley(_run(ShapleyAblation(components=names), n_repeats=3, noise=0.1))
    (bars,) = figure.data
    assert sorted(bars.y) == names and len(bars.error_x.array) == 3


@pytest.mark.spark
@pytest.mark.timeout(240)
def test_four_spark_workers_run_each_subset_once(spark: object) -> None:
    from optuna_spark import SparkExecutor

    names = ["a", "b", "c", "d"]
    sampler = AblationSampler(ShapleyAblation(components=names), n_repeats=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    SparkExecutor(spark, n_workers=4).optimize(study, g.objective(0.05, names))  # type: ignore[arg-type]
    arms = [(t.user_attrs["loco_arm"], t.user_attrs["loco_repeat"]) for t in study.trials]
    assert len(arms) == len(set(arms)) == 16 * 2  # each (subset, repeat) once, then it ended
    report = shapley_report(study)
    exact = g.exact_shapley(names)
    assert all(abs(report.loc[c, "shapley"] - exact[c]) < 0.2 for c in names)


def _separable(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 10)
    z = trial.suggest_categorical("z", ["a", "b"])
    return (x - 1) ** 2 + 0.1 * (y - 5) ** 2 + (z == "b")


def test_the_changes_of_a_tuned_study_get_their_shapley_values() -> None:
    tuned = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    tuned.enqueue_trial({"x": 8.0, "y": 0, "z": "b"})  # the defaults: the first trial
    tuned.enqueue_trial({"x": 1.0, "y": 5, "z": "a"})  # the tuned best
    tuned.optimize(_separable, n_trials=2)
    policy = ShapleyAblation.from_study(tuned)
    assert policy.names == ["x", "y", "z"] and len(policy.arms(None)) == 8  # type: ignore[arg-type]
    study = optuna.create_study(sampler=AblationSampler(policy, n_repeats=1, seed=0))
    study.optimize(_separable)  # the tuning objective, unchanged
    report = shapley_report(study)
    # A separable objective: each change's credit is its own gain, whatever the order.
    assert report.loc["x", "shapley"] == pytest.approx(49.0)
    assert report.loc["y", "shapley"] == pytest.approx(2.5)
    assert report.loc["z", "shapley"] == pytest.approx(1.0)
    assert report.attrs["interactions"]["interaction"].abs().max() == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="has no completed trial"):
        ShapleyAblation.from_study(optuna.create_study())


@pytest.mark.parametrize(("tolerance", "grows"), [(1.0, False), (0.06, True)])
def test_an_adaptive_budget_adds_permutations_until_every_interval_is_narrow(
    tolerance: float, grows: bool
) -> None:
    names = g.COMPONENTS
    policy = ShapleyAblation(components=names, max_arms=(16, 160), order=1, tolerance=tolerance)
    assert policy.adaptive and policy.first_units == 1
    study = _run(policy, n_repeats=3, noise=0.1)
    arms = {t.user_attrs["loco_arm"] for t in study.trials}
    report = shapley_report(study)
    half = (report["ci_high"] - report["ci_low"]) / 2
    if grows:  # more units than at first, and it stopped once narrow enough (or at the cap)
        assert 16 < len(arms) <= 160
        assert (half <= tolerance).all() or len(arms) > 160 - 2 * len(names)
    else:  # narrow enough from the start: one pair of permutations, no more
        assert len(arms) <= 16 and (half <= tolerance).all()
    exact = g.exact_shapley(names)
    assert all(abs(report.loc[c, "shapley"] - exact[c]) < 0.2 for c in names)
    assert report["shapley"].sum() == pytest.approx(report.attrs["total"])  # efficiency


def test_an_adaptive_budget_with_pairs_grows_from_the_fit_subsets() -> None:
    policy = ShapleyAblation(components=g.COMPONENTS, max_arms=(56, 160), tolerance=0.06)
    assert policy.adaptive and policy.first_units == 1
    study = _run(policy, n_repeats=3, noise=0.1)
    arms = {t.user_attrs["loco_arm"] for t in study.trials}
    assert 56 < len(arms) <= 160  # the fit's 46 and one unit, then more units
    report = shapley_report(study)
    half = (report["ci_high"] - report["ci_low"]) / 2
    assert (half <= 0.06).all() or len(arms) > 160 - 2 * len(g.COMPONENTS)
    assert report["shapley"].sum() == pytest.approx(report.attrs["total"])  # efficiency
    pairs = report.attrs["interactions"]
    assert list(pairs[pairs["excludes_zero"]].index) == [("c", "d"), ("e", "f")]


def test_bad_budgets_and_tolerances_are_refused() -> None:
    with pytest.raises(ValueError, match="a \\(low, high\\) pair"):
        ShapleyAblation(components=g.COMPONENTS, max_arms=(128, 64), order=1)
    with pytest.raises(ValueError, match="tolerance must be a positive number"):
        ShapleyAblation(components=g.COMPONENTS, max_arms=(16, 64), order=1, tolerance=0.0)


def test_the_report_waits_for_every_subset_of_some_seed() -> None:
    names = ["a", "b", "c"]
    sampler = AblationSampler(ShapleyAblation(components=names), n_repeats=1, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(g.objective(0.0, names), n_trials=5)  # 3 of the 8 subsets still to run
    with pytest.raises(ValueError, match="no seed has a completed trial of every subset"):
        shapley_report(study)


def test_fitted_to_every_subset_the_second_order_game_gives_the_shapley_values() -> None:
    from optuna_spark.ablation._shapley_fit import fit_game

    # A game with terms of every order: the kernel-weighted fit over all subsets still
    # gives each component its exact Shapley value (any other weighting would not).
    names = [f"c{i}" for i in range(5)]
    rng = random.Random(3)
    terms = {
        frozenset(t): rng.uniform(-1, 1)
        for k in (1, 2, 3, 4)
        for t in itertools.combinations(names, k)
        if rng.random() < 0.5
    }

    def value(present: frozenset[str]) -> float:
        return sum(w for t, w in terms.items() if t <= present)

    subsets = [frozenset(s) for k in range(6) for s in itertools.combinations(names, k)]
    fit = fit_game({s: np.array([value(s)]) for s in subsets}, names)
    exact = dict.fromkeys(names, 0.0)
    for order in itertools.permutations(names):
        for k, c in enumerate(order):
            gain = value(frozenset(order[: k + 1])) - value(frozenset(order[:k]))
            exact[c] += gain / math.factorial(len(names))
    values, _ = fit.values()
    assert values[0] == pytest.approx([exact[c] for c in names])
    assert fit.residual_df == len(subsets) - 2 - (len(names) + len(fit.pairs)) + 1
