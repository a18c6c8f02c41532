"""The report and plot on studies with a known answer."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
from scipy import stats

from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablation_report
from optuna_spark.ablation import plot_ablation
from optuna_spark.ablation._report import COLUMNS
from optuna_spark.ablation._report import holm
from tests.ablation import _objectives as o

ARMS = ["base", "feature:area", "feature:floors", "feature:noise"]


def _add(
    study: optuna.Study,
    arm: str,
    repeat: int,
    value: float | None,
    *,
    seed: int | None = None,
    state: TrialState = TrialState.COMPLETE,
) -> None:
    kind, _, name = arm.partition(":")
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=value,
            params={"loco_arm": arm, "loco_repeat": repeat},
            distributions={
                "loco_arm": CategoricalDistribution(ARMS),
                "loco_repeat": IntDistribution(0, 9),
            },
            user_attrs={
                "loco_arm": arm,
                "loco_kind": kind,
                "loco_name": name or "base",
                "loco_repeat": repeat,
                "loco_seed": 1000 + repeat if seed is None else seed,
                "loco_arms": ARMS,
                "loco_n_repeats": 10,
            },
        )
    )


def _synthetic(
    direction: Literal["minimize", "maximize"] = "minimize", n: int = 6
) -> tuple[optuna.Study, dict[str, float]]:
    """Area costs 3, floors 1, noise nothing; each repeat shares a large seed effect."""
    effects = {"base": 0.0, "feature:area": 3.0, "feature:floors": 1.0, "feature:noise": 0.0}
    sign = 1.0 if direction == "minimize" else -1.0
    rng = np.random.default_rng(42)
    study = optuna.create_study(direction=direction)
    for r in range(n):
        shared = rng.normal(0.0, 2.0)  # larger than the effects: only pairing sees them
        for arm, effect in effects.items():
            _add(study, arm, r, 10.0 + shared + sign * (effect + rng.normal(0.0, 0.1)))
    return study, effects


def test_known_effects_are_found_and_the_null_is_not() -> None:
    study, effects = _synthetic()
    report = ablation_report(study)
    assert list(report.columns) == list(COLUMNS)
    assert list(report["arm"]) == ["base", "feature:area", "feature:floors", "feature:noise"]
    r = report.set_index("arm")
    for arm in ["feature:area", "feature:floors", "feature:noise"]:
        assert r.loc[arm, "test"] == "paired"
        assert r.loc[arm, "n_pairs"] == 6
        assert r.loc[arm, "diff"] == pytest.approx(effects[arm], abs=0.15)
        assert r.loc[arm, "diff_ci_low"] < effects[arm] < r.loc[arm, "diff_ci_high"]
        assert r.loc[arm, "importance"] == r.loc[arm, "diff"]  # minimized: a rise is a cost
    assert r.loc["feature:area", "significant"] and r.loc["feature:floors", "significant"]
    assert not r.loc["feature:noise", "significant"]
    assert r.loc["feature:area", "p_value"] < 1e-4
    assert r.loc["feature:noise", "p_holm"] > 0.05
    assert report.attrs == {
        "direction": "minimize",
        "confidence": 0.95,
        "alpha": 0.05,
        "reference": "base",
        "mode": "out",
        "looks": 1,
    }
    assert (report["stopped"] == "").all() and (report["finding"] == "").all()
    assert report["interaction"].isna().all()  # no pairs


def test_the_base_row() -> None:
    study, _ = _synthetic()
    base_values = [float(t.values[0]) for t in study.trials if t.user_attrs["loco_arm"] == "base"]
    row = ablation_report(study).iloc[0]
    assert row["arm"] == "base" and row["kind"] == "base"
    assert row["n"] == 6
    assert row["mean"] == pytest.approx(np.mean(base_values))
    assert row["std"] == pytest.approx(np.std(base_values, ddof=1))
    low, high = stats.t.interval(0.95, 5, loc=np.mean(base_values), scale=stats.sem(base_values))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["diff"] == 0.0 and row["importance"] == 0.0
    assert math.isnan(row["p_value"]) and not row["significant"]


def test_paired_test_is_scipys_ttest_rel() -> None:
    study, _ = _synthetic()
    by_arm: dict[str, list[float]] = {}
    for t in sorted(study.trials, key=lambda t: t.user_attrs["loco_repeat"]):
        assert t.value is not None
        by_arm.setdefault(t.user_attrs["loco_arm"], []).append(t.value)
    expected = stats.ttest_rel(by_arm["feature:floors"], by_arm["base"])
    row = ablation_report(study).set_index("arm").loc["feature:floors"]
    assert row["p_value"] == pytest.approx(expected.pvalue)
    ps = [stats.ttest_rel(by_arm[a], by_arm["base"]).pvalue for a in ARMS[1:]]
    report = ablation_report(study).set_index("arm")
    assert list(report.loc[ARMS[1:], "p_holm"]) == pytest.approx(list(holm(ps)))


def test_maximized_objective_ranks_by_loss_of_value() -> None:
    study, _ = _synthetic("maximize")
    report = ablation_report(study)
    assert list(report["arm"]) == ["base", "feature:area", "feature:floors", "feature:noise"]
    r = report.set_index("arm")
    assert r.loc["feature:area", "diff"] == pytest.approx(-3.0, abs=0.15)
    assert r.loc["feature:area", "importance"] == pytest.approx(3.0, abs=0.15)
    assert ablation_report(study, direction="minimize").iloc[1]["arm"] == "feature:noise"


def test_welch_when_seeds_do_not_pair() -> None:
    study = optuna.create_study()
    rng = np.random.default_rng(0)
    for r in range(8):
        _add(study, "base", r, 1.0 + rng.normal(0, 0.1), seed=r)
        _add(study, "feature:area", r, 2.0 + rng.normal(0, 0.1), seed=100 + r)
        _add(study, "feature:noise", r, 1.0 + rng.normal(0, 0.1), seed=100 + r)
    r = ablation_report(study).set_index("arm")
    base = [t.value for t in study.trials if t.user_attrs["loco_arm"] == "base"]
    area = [t.value for t in study.trials if t.user_attrs["loco_arm"] == "feature:area"]
    expected = stats.ttest_ind(area, base, equal_var=False)
    assert r.loc["feature:area", "test"] == "welch"
    assert r.loc["feature:area", "n_pairs"] == 0
    assert r.loc["feature:area", "p_value"] == pytest.approx(expected.pvalue)
    assert r.loc["feature:area", "significant"]
    assert not r.loc["feature:noise", "significant"]


def test_only_completed_trials_count_and_missing_data_gives_nan() -> None:
    study = optuna.create_study()
    for rep in range(3):
        _add(study, "base", rep, 1.0 + rep)
        _add(study, "feature:area", rep, 3.0 + rep)
    _add(study, "feature:area", 3, None, state=TrialState.FAIL)
    _add(study, "feature:floors", 0, 5.0)  # one value: no spread, no test
    _add(study, "feature:noise", 0, None, state=TrialState.PRUNED)
    r = ablation_report(study).set_index("arm")
    assert r.loc["feature:area", "n"] == 3
    # Deterministic paired differences: exact, p = 0.
    assert r.loc["feature:area", "diff"] == 2.0
    assert r.loc["feature:area", "p_value"] == 0.0 and r.loc["feature:area", "significant"]
    assert r.loc["feature:floors", "n"] == 1 and math.isnan(r.loc["feature:floors", "std"])
    assert math.isnan(r.loc["feature:floors", "p_value"])
    assert not r.loc["feature:floors", "significant"]
    assert r.loc["feature:noise", "n"] == 0 and math.isnan(r.loc["feature:noise", "mean"])
    # Arms without a difference come last.
    assert list(r.index)[-1] == "feature:noise"


def test_a_study_run_by_the_sampler() -> None:
    sampler = LOCOSampler(features=o.FEATURES, components=["augment"], n_repeats=5, seed=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    r = ablation_report(study).set_index("arm")
    assert r.loc["base", "n"] == 5
    assert r.loc["feature:area", "significant"]
    assert r.loc["feature:floors", "significant"]
    assert not r.loc["feature:noise", "significant"]
    assert not r.loc["component:augment", "significant"]
    assert list(r.index[:3]) == ["base", "feature:area", "feature:floors"]


def test_errors() -> None:
    with pytest.raises(ValueError, match="no trials of an ablation sampler"):
        ablation_report(optuna.create_study())
    study, _ = _synthetic()
    with pytest.raises(ValueError, match="confidence must be in"):
        ablation_report(study, confidence=95)
    with pytest.raises(ValueError, match="direction must be"):
        ablation_report(study, direction="up")
    multi = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="needs target="):
        ablation_report(multi)


def test_multi_objective_with_a_target() -> None:
    sampler = LOCOSampler(components=["trick"], n_repeats=3, seed=0)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    study.optimize(lambda t: (o.loss(t), 1.0))
    report = ablation_report(study, target=lambda t: t.values[0], direction="minimize")
    assert list(report["n"]) == [3, 3]


def test_holm() -> None:
    assert list(holm([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(holm([0.5, 0.9])) == [1.0, 1.0]
    assert list(holm([])) == []


def test_plot() -> None:
    study, _ = _synthetic()
    fig = plot_ablation(study, target_name="Loss")
    names = [trace.name for trace in fig.data]
    assert names == ["base", "significant", "not significant"]
    bars = {y: x for trace in fig.data for x, y in zip(trace.x, trace.y, strict=True)}
    report = ablation_report(study).set_index("arm")
    assert bars == pytest.approx(dict(report["mean"]))
    assert list(fig.layout.yaxis.categoryarray) == ARMS[::-1]  # base on top
    assert fig.layout.xaxis.title.text == "Loss"
    assert fig.layout.shapes[0].x0 == pytest.approx(report.loc["base", "mean"])
    significant = fig.data[1]
    assert list(significant.y) == ["feature:floors", "feature:area"]
    assert all(e >= 0 for e in significant.error_x.array)
    assert "*" in significant.text[0]
    # Value labels sit at the start of each bar, away from the error bar at its end.
    assert all(t.textposition == "inside" and t.insidetextanchor == "start" for t in fig.data)
    fig.to_html()  # renders


@pytest.mark.parametrize("missing", ["pandas", "scipy", "plotly"])
def test_reports_and_plots_name_the_extra_they_need(
    missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from optuna_spark.ablation import plot_ablation

    # The sampler needs none of them: a study runs without the extra.
    sampler = LOCOSampler(components=["trick"], n_repeats=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(o.loss)
    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    monkeypatch.setitem(sys.modules, missing, None)
    call = plot_ablation if missing == "plotly" else ablation_report
    with pytest.raises(ImportError, match=rf"{missing}; .*pip install 'optuna-spark\[ablation\]'"):
        call(study)
