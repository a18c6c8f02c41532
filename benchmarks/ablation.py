"""Ablation beyond leave-one-out: redundancy, adaptive repeats and the ablation path.

Three experiments with known answers:

(a) **Redundancy** (on embedded Spark, four workers): a regression whose target depends on a
    measurement recorded twice, in centimetres (``twin_a``) and in inches (``twin_b``), on a
    second signal (``signal``), and not on ``noise``. A least-squares model is trained per
    trial, the data and split seeded by the repeat. Leave-one-out alone, then with
    ``pairs=True``.
(b) **Adaptive repeats** over 20 seeds: six components with planted effects (three real,
    three null) and seed noise; 20 fixed repeats against ``n_repeats=(3, 20)``, with and
    without the futility stop. Same decisions? How many trials? How many false discoveries?
(c) **The ablation path** of a TPE-tuned study of a separable objective, whose gain from each
    parameter change is known in closed form.
(d) **Shapley values** of 8 components with a known value function (main effects, a
    redundant pair, a synergistic pair, a null) and paired seed noise: the sampled design
    on a budget of 64 of the 256 subsets over 20 seeds (error, coverage of the 95%
    intervals), the exact design's interactions, and 12 components on 256 of 4,096 subsets;
    then the pairwise interactions on those budgets (``order=2``: which pairs each seed
    flags), also on a game with a three-way interaction.
(e) **Importances** of a planted tuning problem (8 parameters; the value depends on three,
    with weights 3, 2, 1): ``importance_report`` on 10,000 random-search trials over 20
    seeds (PED-ANOVA: top 3 recovered? seconds), and both evaluators on 1,000 trials.

    python benchmarks/ablation.py            # writes benchmarks/results/ablation.json
    python benchmarks/ablation.py --parts shapley --out benchmarks/results/ablation-shapley.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from optuna_spark import SparkExecutor
from optuna_spark.ablation import AblationPath
from optuna_spark.ablation import AblationSampler
from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ShapleyAblation
from optuna_spark.ablation import ablation_path_report
from optuna_spark.ablation import ablation_report
from optuna_spark.ablation import get_arm
from optuna_spark.ablation import importance_report
from optuna_spark.ablation import shapley_report

FEATURES = ["twin_a", "twin_b", "signal", "noise"]


# ---------------------------------------------------------------------------------------------
# (a) Redundancy.


def ridge_objective(trial: optuna.trial.BaseTrial) -> float:
    """Test MSE of least squares without the arm's features (seeded split and data)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    arm = get_arm(trial)
    rng = np.random.default_rng(arm.seed)
    n = 1000
    base = rng.normal(170.0, 10.0, size=n)  # a height, say
    columns = {
        "twin_a": base,
        "twin_b": base / 2.54,
        "signal": rng.normal(size=n),
        "noise": rng.normal(size=n),
    }
    y = 0.2 * (base - 170.0) + 1.0 * columns["signal"] + rng.normal(0.0, 0.5, n)
    keep = [f for f in FEATURES if arm.is_enabled(f)]
    x = np.column_stack([columns[f] for f in keep]) if keep else np.zeros((n, 1))
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=arm.seed % 2**31)
    model = LinearRegression().fit(x_train, y_train)
    return float(np.mean((model.predict(x_test) - y_test) ** 2))


def redundancy(n_repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pairs in (("loco", False), ("pairs", True)):
        sampler = LOCOSampler(features=FEATURES, pairs=pairs, n_repeats=n_repeats, seed=0)
        study = optuna.create_study(sampler=sampler)
        t0 = time.perf_counter()
        SparkExecutor(n_workers=4).optimize(study, ridge_objective)
        report = ablation_report(study)
        out[name] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "trials": len(study.trials),
            "rows": [
                {
                    "arm": r.arm,
                    "diff": round(r.diff, 4),
                    "ci": [round(r.diff_ci_low, 4), round(r.diff_ci_high, 4)],
                    "p_holm": None if np.isnan(r.p_holm) else round(r.p_holm, 6),
                    "significant": bool(r.significant),
                    "interaction": None if np.isnan(r.interaction) else round(r.interaction, 4),
                    "finding": r.finding,
                }
                for r in report.itertuples(index=False)
            ],
        }
    return out


# ---------------------------------------------------------------------------------------------
# (b) Adaptive repeats.

#: Planted effects (objective units) of leaving each component out; the noise of a paired
#: difference has a standard deviation of about 1.
EFFECTS = {"large": 3.0, "medium": 2.0, "small": 1.5, "null_1": 0.0, "null_2": 0.0, "null_3": 0.0}


def planted_objective(trial: optuna.trial.BaseTrial) -> float:
    arm = get_arm(trial)
    shared = np.random.default_rng(arm.seed).normal(0.0, 3.0)  # the seed's effect, every arm
    own = np.random.default_rng([arm.seed, zlib.crc32(arm.label.encode())]).normal(0.0, 0.7)
    return 10.0 + shared + own + sum(EFFECTS[c] for c in arm.left_out)


def adaptive(n_seeds: int, high: int) -> dict[str, Any]:
    modes: dict[str, dict[str, Any]] = {
        "fixed": {"n_repeats": high},
        "adaptive": {"n_repeats": (3, high)},
        "adaptive, no futility": {"n_repeats": (3, high), "futility": False},
    }
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for seed in range(n_seeds):
        for mode, kwargs in modes.items():
            sampler = LOCOSampler(components=list(EFFECTS), seed=seed, **kwargs)
            study = optuna.create_study(sampler=sampler)
            study.optimize(planted_objective)
            report = ablation_report(study).set_index("arm")
            runs[mode].append(
                {
                    "trials": len(study.trials),
                    "significant": {
                        c: bool(report.loc[f"component:{c}", "significant"]) for c in EFFECTS
                    },
                }
            )
    summary: dict[str, Any] = {}
    fixed_mean = float(np.mean([r["trials"] for r in runs["fixed"]]))
    for mode in modes:
        trials = [r["trials"] for r in runs[mode]]
        same = sum(
            r["significant"] == f["significant"]
            for r, f in zip(runs[mode], runs["fixed"], strict=True)
        )
        false = sum(r["significant"][c] for r in runs[mode] for c in EFFECTS if not EFFECTS[c])
        missed = sum(not r["significant"][c] for r in runs[mode] for c in EFFECTS if EFFECTS[c])
        right = sum(
            r["significant"] == {c: bool(e) for c, e in EFFECTS.items()} for r in runs[mode]
        )
        summary[mode] = {
            "median_trials": float(np.median(trials)),
            "mean_trials": float(np.mean(trials)),
            "saving_vs_fixed": round(1 - float(np.mean(trials)) / fixed_mean, 3),
            "seeds_with_same_decisions_as_fixed": same,
            "seeds_with_every_decision_right": right,
            "false_discoveries": false,
            "missed_effects": missed,
        }
    return {"seeds": n_seeds, "high": high, "effects": EFFECTS, "summary": summary}


# ---------------------------------------------------------------------------------------------
# (c) The ablation path.

#: A separable objective: each parameter's weight and optimum. ``batch`` does not matter.
WEIGHTS = {"lr": 4.0, "depth": 1.0, "dropout": 0.25, "batch": 0.0}
OPTIMA = {"lr": -2.0, "depth": 6, "dropout": 0.2, "batch": 64}


def separable_objective(trial: optuna.trial.BaseTrial) -> float:
    params = {
        "lr": trial.suggest_float("lr", -5.0, 0.0),  # log10 of the learning rate
        "depth": trial.suggest_int("depth", 1, 12),
        "dropout": trial.suggest_float("dropout", 0.0, 0.8),
        "batch": trial.suggest_categorical("batch", [16, 64, 256]),
    }
    return sum(_term(p, v) for p, v in params.items())


def _term(param: str, value: Any) -> float:
    if param == "batch":
        return 0.0
    return WEIGHTS[param] * (float(value) - float(OPTIMA[param])) ** 2


def path(n_trials: int) -> dict[str, Any]:
    tuned = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    tuned.enqueue_trial({"lr": -4.5, "depth": 2, "dropout": 0.6, "batch": 16})  # the defaults
    tuned.optimize(separable_objective, n_trials=n_trials)
    policy = AblationPath.from_study(tuned)
    study = optuna.create_study(sampler=AblationSampler(policy, seed=0))
    study.optimize(separable_objective, n_jobs=2)
    report = ablation_path_report(study)
    known = {p: _term(p, policy.source[p]) - _term(p, policy.target[p]) for p in policy.params}
    expected_order = sorted(policy.params, key=lambda p: -known[p])
    steps = [
        {"param": r.param, "gain": round(r.gain, 4), "known_gain": round(known[r.param], 4),
         "share": round(r.share, 4)}
        for r in report.itertuples(index=False) if r.step > 0
    ]  # fmt: skip
    return {
        "tuning_trials": n_trials,
        "path_trials": len(study.trials),
        "order": [s["param"] for s in steps],
        "expected_order": expected_order,
        "steps": steps,
        "max_abs_gain_error": max(abs(s["gain"] - s["known_gain"]) for s in steps),
    }


# ---------------------------------------------------------------------------------------------
# (d) Shapley values.

MAIN = {"a": 1.0, "b": 0.5, "e": 0.25, "f": 0.25, "g": 0.0, "h": 0.8}
EXTRA = {"i": 0.3, "j": 0.6, "k": 0.0, "l": 0.15}  # four more components for 12


def game_value(present: frozenset[str], three_way: bool = False) -> float:
    """Main effects; c or d (redundant: either gives 1); e and f together add 1; with
    ``three_way``, a, b and h together add 1 more."""
    v = sum(MAIN.get(c, 0.0) + EXTRA.get(c, 0.0) for c in present)
    v += 1.0 if ("c" in present or "d" in present) else 0.0
    v += 1.0 if {"e", "f"} <= present else 0.0
    v += 1.0 if three_way and {"a", "b", "h"} <= present else 0.0
    return v


def exact_shapley(names: list[str], three_way: bool = False) -> dict[str, float]:
    """The exact values, by the subset formula (2^n subsets)."""
    n = len(names)
    out = {}
    for i in names:
        others = [c for c in names if c != i]
        total = 0.0
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                total += w * (game_value(s | {i}, three_way) - game_value(s, three_way))
        out[i] = total
    return out


def exact_interactions(names: list[str], three_way: bool) -> dict[tuple[str, str], float]:
    """The exact pairwise Shapley interaction indices, by the subset formula."""
    n, out = len(names), {}
    for i, j in itertools.combinations(names, 2):
        others = [c for c in names if c not in (i, j)]
        total = 0.0
        for size in range(n - 1):
            w = math.factorial(size) * math.factorial(n - size - 2) / math.factorial(n - 1)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                v = [game_value(t, three_way) for t in (s | {i, j}, s | {i}, s | {j}, s)]
                total += w * (v[0] - v[1] - v[2] + v[3])
        out[(i, j)] = total
    return out


def shapley_objective(names: list[str], noise: float, three_way: bool = False) -> Any:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        arm = get_arm(trial)
        present = frozenset(c for c in names if arm.is_enabled(c))
        key = zlib.crc32(",".join(sorted(present)).encode())
        shared = np.random.default_rng(arm.seed).normal(0, noise)  # the seed's own luck
        own = np.random.default_rng([arm.seed, key]).normal(0, noise / 2)
        return game_value(present, three_way) + float(shared + own)

    return objective


def _shapley_run(
    names: list[str], max_arms: int | None, order: int, seed: int, three_way: bool = False
) -> Any:
    policy = ShapleyAblation(components=names, max_arms=max_arms, order=order, seed=seed)
    sampler = AblationSampler(policy, n_repeats=3, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(shapley_objective(names, 0.1, three_way))
    return study, len(policy.arms(None))  # type: ignore[arg-type]


def budget_interactions(
    n: int, max_arms: int, n_seeds: int, three_way: bool, order: int = 2
) -> dict[str, Any]:
    """Values and pairwise interactions on a budget (``order=2``; ``1``: values only, from
    the permutations): errors, coverage, and which pairs each seed flags (the planted
    ones: c-d redundant, e-f synergistic)."""
    names = list("abcdefghijkl"[:n])
    values, pairs = exact_shapley(names, three_way), exact_interactions(names, three_way)
    errors, covered, widths, i_errors, i_covered, i_widths, arms = [], 0, [], [], 0, [], []
    both, wrong_sign, false_flags, planted_three_way = 0, 0, 0, 0
    t0 = time.perf_counter()
    for seed in range(n_seeds):
        study, _ = _shapley_run(names, max_arms, order, seed, three_way)
        arms.append(len({t.user_attrs["loco_arm"] for t in study.trials}))
        report = shapley_report(study)
        for c in names:
            errors.append(abs(report.loc[c, "shapley"] - values[c]))
            covered += bool(report.loc[c, "ci_low"] <= values[c] <= report.loc[c, "ci_high"])
        widths += list(report["ci_high"] - report["ci_low"])
        if order == 1:
            continue
        found = report.attrs["interactions"]
        for pair, row in found.iterrows():
            truth = pairs[pair]
            i_errors.append(abs(row["interaction"] - truth))
            i_covered += bool(row["ci_low"] <= truth <= row["ci_high"])
            i_widths.append(row["ci_high"] - row["ci_low"])
            if row["excludes_zero"] and abs(truth) < 1e-9:
                false_flags += 1
            if row["excludes_zero"] and truth * row["interaction"] < 0:
                wrong_sign += 1
        flagged = found[found["excludes_zero"]]
        redundant = ("c", "d") in flagged.index and flagged.loc[("c", "d"), "interaction"] < 0
        synergy = ("e", "f") in flagged.index and flagged.loc[("e", "f"), "interaction"] > 0
        both += int(redundant and synergy)
        planted_three_way += sum(p in flagged.index for p in (("a", "b"), ("a", "h"), ("b", "h")))
    out = {
        "order": order,
        "subsets": 2**n,
        "max_arms": max_arms,
        "arms_run_range": [min(arms), max(arms)],
        "trials_per_study": max(arms) * 3,
        "seeds": n_seeds,
        "value_max_abs_error": float(max(errors)),
        "value_mean_abs_error": float(np.mean(errors)),
        "value_coverage_95": covered / len(errors),
        "value_median_width": float(np.median(widths)),
        "seconds": time.perf_counter() - t0,
    }
    if order == 1:
        return out
    return out | {
        "fit_subsets": 2 * n + 2 + n * (n - 1) // 2,
        "interaction_max_abs_error": float(max(i_errors)),
        "interaction_coverage_95": i_covered / len(i_errors),
        "interaction_median_width": float(np.median(i_widths)),
        "seeds_flagging_c_d_and_e_f_with_their_signs": both,
        "false_flags_of_null_pairs": false_flags,
        "null_pairs_looked_at": n_seeds * sum(abs(v) < 1e-9 for v in pairs.values()),
        "flags_with_a_wrong_sign": wrong_sign,
        "three_way_pairs_flagged": planted_three_way if three_way else None,
        "pairs": len(pairs),
    }


def shapley(n_seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, budget in ((8, 64), (12, 256)):
        names = list("abcdefghijkl"[:n])
        exact = exact_shapley(names)
        errors, covered, widths, arms = [], 0, [], 0
        t0 = time.perf_counter()
        for seed in range(n_seeds if n == 8 else max(5, n_seeds // 4)):
            study, arms = _shapley_run(names, budget, 1, seed)
            report = shapley_report(study)
            for c in names:
                row = report.loc[c]
                errors.append(abs(row["shapley"] - exact[c]))
                covered += bool(row["ci_low"] <= exact[c] <= row["ci_high"])
                widths.append(row["ci_high"] - row["ci_low"])
        runs = len(errors) // n
        out[f"{n}_components"] = {
            "subsets": 2**n,
            "arms_run": arms,
            "share_of_subsets": arms / 2**n,
            "trials_per_study": arms * 3,
            "seeds": runs,
            "max_abs_error": float(max(errors)),
            "mean_abs_error": float(np.mean(errors)),
            "share_within_0.2": float(np.mean([e <= 0.2 for e in errors])),
            "coverage_95": covered / len(errors),
            "median_interval_width": float(np.median(widths)),
            "seconds": time.perf_counter() - t0,
        }
        print(f"(d) {n} components, {arms} of {2**n} subsets: {out[f'{n}_components']}")
    names = list("abcdefgh")
    exact = exact_shapley(names)
    used, errors, covered = [], [], 0
    for seed in range(n_seeds):
        policy = ShapleyAblation(
            components=names, max_arms=(16, 160), order=1, tolerance=0.06, seed=seed
        )
        sampler = AblationSampler(policy, n_repeats=3, seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(shapley_objective(names, 0.1))
        used.append(len({t.user_attrs["loco_arm"] for t in study.trials}))
        report = shapley_report(study)
        for c in names:
            errors.append(abs(report.loc[c, "shapley"] - exact[c]))
            covered += bool(report.loc[c, "ci_low"] <= exact[c] <= report.loc[c, "ci_high"])
    out["8_components_adaptive"] = {
        "max_arms": [16, 160],
        "tolerance": 0.06,
        "arms_run_median": float(np.median(used)),
        "arms_run_range": [min(used), max(used)],
        "max_abs_error": float(max(errors)),
        "coverage_95": covered / len(errors),
    }
    print(f"(d) 8 components, adaptive: {out['8_components_adaptive']}")
    study, arms = _shapley_run(names, None, 2, 0)
    pairs = shapley_report(study).attrs["interactions"]
    flagged = pairs[pairs["excludes_zero"]]
    out["exact_interactions"] = {
        "arms_run": arms,
        "redundant_c_d": pairs.loc[("c", "d")].to_dict(),
        "synergy_e_f": pairs.loc[("e", "f")].to_dict(),
        "flagged_pairs": [f"{a}-{b}" for a, b in flagged.index],
    }
    print(f"(d) exact interactions: {out['exact_interactions']}")
    for key, n, budget, seeds, three_way, order in (
        ("8_components_interactions_budget", 8, 64, n_seeds, False, 2),
        ("8_components_three_way_budget", 8, 64, n_seeds, True, 2),
        ("8_components_three_way_values_only", 8, 64, n_seeds, True, 1),
        ("12_components_interactions_budget", 12, 256, max(5, n_seeds // 4), False, 2),
    ):
        out[key] = budget_interactions(n, budget, seeds, three_way, order)
        print(f"(d) {key}: {out[key]}")
    return out


# ---------------------------------------------------------------------------------------------
# (e) Importances.

PLANTED = {f"p{i}": w for i, w in enumerate([3.0, 2.0, 1.0, 0, 0, 0, 0, 0])}


def planted_study(n: int, seed: int) -> optuna.Study:
    from optuna.distributions import FloatDistribution

    rng = np.random.default_rng(seed)
    space = {p: FloatDistribution(0, 1) for p in PLANTED}
    values = rng.uniform(0, 1, size=(n, len(PLANTED)))
    scores = ((values - 0.5) ** 2 * np.array(list(PLANTED.values()))).sum(axis=1)
    scores += rng.normal(0, 0.01, size=n)
    study = optuna.create_study()
    study.add_trials(
        [
            optuna.trial.create_trial(
                params=dict(zip(PLANTED, map(float, row), strict=True)),
                distributions=space,
                value=float(score),
            )
            for row, score in zip(values, scores, strict=True)
        ]
    )
    return study


def importance(n_seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for max_trials in (10_000, 1_000):  # every trial, and the default sample
        top3, seconds = 0, []
        for seed in range(n_seeds):
            study = planted_study(10_000, seed)
            t0 = time.perf_counter()
            report = importance_report(
                study, evaluators=["ped_anova"], max_trials=max_trials, seed=seed
            )
            seconds.append(time.perf_counter() - t0)
            top3 += set(report.index[:3]) == {"p0", "p1", "p2"}
        out[f"ped_anova_10000_trials_max_trials_{max_trials}"] = {
            "seeds": n_seeds,
            "top3_recovered": top3,
            "median_seconds": float(np.median(seconds)),
            "max_seconds": float(max(seconds)),
        }
    study = planted_study(1_000, 0)
    t0 = time.perf_counter()
    both = importance_report(study, seed=0)
    out["both_1000_trials"] = {
        "seconds": time.perf_counter() - t0,
        "top3_ped_anova": list(both.index[:3]),
        "top3_fanova": list(both["fanova"].sort_values(ascending=False).index[:3]),
        "table": both.round(4).to_dict(),
    }
    print(f"(e) importances: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="repeats in (a)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds in (b)")
    parser.add_argument("--high", type=int, default=20, help="fixed repeats in (b)")
    parser.add_argument("--tuning-trials", type=int, default=60, help="TPE trials in (c)")
    parser.add_argument("--out", default="benchmarks/results/ablation.json")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["redundancy", "adaptive", "path", "shapley", "importance"],
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "optuna": optuna.__version__,
    }
    if "redundancy" in args.parts:
        results["redundancy"] = redundancy(args.repeats)
    if "adaptive" in args.parts:
        results["adaptive"] = adaptive(args.seeds, args.high)
    if "path" in args.parts:
        results["path"] = path(args.tuning_trials)
    if "shapley" in args.parts:
        results["shapley"] = shapley(args.seeds)
    if "importance" in args.parts:
        results["importance"] = importance(args.seeds)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
