"""importance_report: a tuning study's importances, PED-ANOVA and f-ANOVA, with intervals."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from optuna_spark.ablation import importance_report

optuna.logging.set_verbosity(optuna.logging.WARNING)

WEIGHTS = {"p0": 3.0, "p1": 2.0, "p2": 1.0, "p3": 0.0, "p4": 0.0, "p5": 0.0}


def _planted(n: int, seed: int) -> optuna.Study:
    """A study of ``n`` random trials whose value depends on p0 > p1 > p2, not the rest."""
    rng = np.random.default_rng(seed)
    space = {p: FloatDistribution(0, 1) for p in WEIGHTS}
    study = optuna.create_study()
    trials = []
    for _ in range(n):
        params = {p: float(rng.uniform(0, 1)) for p in WEIGHTS}
        value = sum(w * (params[p] - 0.5) ** 2 for p, w in WEIGHTS.items())
        trials.append(
            optuna.trial.create_trial(
                params=params, distributions=space, value=value + rng.normal(0, 0.01)
            )
        )
    study.add_trials(trials)
    return study


def test_both_evaluators_find_the_planted_parameters_with_intervals() -> None:
    report = importance_report(_planted(200, 0), n_resamples=4)
    assert list(report.index[:3]) == ["p0", "p1", "p2"]
    for name in ("ped_anova", "fanova"):
        assert set(report[name].sort_values(ascending=False).index[:2]) == {"p0", "p1"}
        assert (report[f"{name}_ci_low"] <= report[name]).all()
        assert (report[name] <= report[f"{name}_ci_high"]).all()
        assert report[name].sum() == pytest.approx(1.0)
        assert report.loc["p0", f"{name}_ci_low"] > report.loc["p3", f"{name}_ci_high"]
    assert report.attrs["trials"] == 200
    assert (
        "p0, p1, p2" in report.attrs["hand_off"] and "ShapleyAblation" in report.attrs["hand_off"]
    )


def test_a_large_study_is_read_on_a_sample_of_max_trials() -> None:
    report = importance_report(_planted(600, 1), evaluators=["ped_anova"], max_trials=300)
    assert report.attrs["trials"] == 300 and list(report.index[:3]) == ["p0", "p1", "p2"]


def test_bad_requests_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="evaluators must be among"):
        importance_report(_planted(10, 0), evaluators=["shap"])
    with pytest.raises(ValueError, match="need at least four"):
        importance_report(_planted(3, 0))


def test_without_resamples_there_is_no_interval() -> None:
    report = importance_report(_planted(50, 2), evaluators=["ped_anova"], n_resamples=0)
    assert report["ped_anova_ci_low"].isna().all() and report["ped_anova_ci_high"].isna().all()
    assert report["ped_anova"].sum() == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:PedAnovaImportanceEvaluator computes:UserWarning")
@pytest.mark.parametrize(
    ("params", "target"),
    [(None, None), (["p0", "p2", "p4"], None), (None, lambda t: -t.params["p1"])],
)
def test_the_importances_are_optunas_own_on_the_same_trials(params, target) -> None:  # type: ignore[no-untyped-def]
    study = _planted(120, 3)
    study.add_trial(  # a pruned and a failed trial: not among the completed trials read
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params={p: 0.5 for p in WEIGHTS},
            distributions={p: FloatDistribution(0, 1) for p in WEIGHTS},
            intermediate_values={0: 9.0},
        )
    )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    report = importance_report(study, n_resamples=0, params=params, target=target, seed=5)
    evaluators = {
        "ped_anova": optuna.importance.PedAnovaImportanceEvaluator(),
        "fanova": optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=5),
    }
    for name, evaluator in evaluators.items():
        expected = optuna.importance.get_param_importances(
            study, evaluator=evaluator, params=params, target=target, normalize=True
        )
        assert report[name].to_dict() == pytest.approx(expected), name
