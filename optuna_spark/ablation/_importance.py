"""``importance_report``: Optuna's parameter importances of a tuning study, with intervals."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from collections.abc import Container
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark.ablation._imports import import_ablation_dependency

if TYPE_CHECKING:
    import pandas as pd

#: The evaluators by name: Optuna's PED-ANOVA (its default) and f-ANOVA (16 trees: a report
#: evaluates it a dozen times).
EVALUATORS: dict[str, Callable[[int], Any]] = {
    "ped_anova": lambda seed: optuna.importance.PedAnovaImportanceEvaluator(),
    "fanova": lambda seed: optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=seed),
}


def importance_report(
    study: optuna.Study,
    *,
    evaluators: Sequence[str] = ("ped_anova", "fanova"),
    n_resamples: int = 10,
    max_trials: int = 1000,
    confidence: float = 0.95,
    params: Sequence[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Each parameter's importance in a finished tuning study, by Optuna's PED-ANOVA and
    f-ANOVA side by side, each with a confidence interval. Runs no new trial.

    Each importance is Optuna's (``optuna.importance.get_param_importances``, normalized to
    add up to 1) on the study's completed trials (a random ``max_trials`` of them when it
    has more). Its interval comes from the same importance on ``n_resamples`` random halves
    of those trials, drawn without replacement: the spread of a statistic over half-samples
    estimates its spread over the whole sample (the delete-d jackknife with d = n/2, which
    holds for statistics as rough as a forest's), so the interval is the importance plus or
    minus the normal quantile times that spread, within [0, 1]. A bootstrap with
    replacement would put duplicate trials in every resample, which shifts tree-based
    importances.

    Importances say what varied with the value where the tuning looked, not what a change
    brings: run the top parameters as an ablation to know that (``attrs["hand_off"]``).

    Args:
        study: A single-objective study with completed trials (or use ``target``).
        evaluators: Which importances: ``"ped_anova"`` and/or ``"fanova"``.
        n_resamples: Half-samples for each interval (``0``: no intervals).
        max_trials: The most trials one evaluation uses.
        confidence: The intervals' level.
        params: The parameters to assess (default: those every completed trial has).
        target: A trial's value to use instead of its objective value.
        seed: Seeds the samples and f-ANOVA's forests.

    Returns:
        A DataFrame indexed by parameter, with a column per evaluator (its importance) and
        ``<evaluator>_ci_low`` / ``<evaluator>_ci_high``, by the first evaluator's
        importance, highest first; ``attrs["trials"]`` is how many trials the importances
        used, ``attrs["hand_off"]`` what to run next.

    Raises:
        ValueError: An unknown evaluator, or fewer than four completed trials.
    """
    pd = import_ablation_dependency("pandas")
    unknown = [e for e in evaluators if e not in EVALUATORS]
    if unknown or not evaluators:
        raise ValueError(f"evaluators must be among {sorted(EVALUATORS)}, not {evaluators!r}.")
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(trials) < 4:
        raise ValueError(
            f"Study {study.study_name!r} has {len(trials)} completed trial(s): importances "
            "with intervals need at least four."
        )
    rng = np.random.default_rng(seed)
    if len(trials) > max_trials:
        trials = [trials[i] for i in sorted(rng.choice(len(trials), max_trials, replace=False))]
    z = _normal_quantile(1 - (1 - confidence) / 2)
    columns: dict[str, list[float]] = {}
    names: list[str] = []
    for name in evaluators:
        evaluate = functools.partial(
            _importances, study.directions, evaluator=name, params=params, target=target
        )
        point, spread = _estimate(trials, evaluate, seed, rng, n_resamples)
        names = names or sorted(point, key=point.__getitem__, reverse=True)
        columns[name] = [point.get(p, 0.0) for p in names]
        low, high = [], []
        for p in names:
            value, margin = point.get(p, 0.0), z * spread.get(p, math.nan)
            finite = math.isfinite(margin)
            low.append(max(0.0, value - margin) if finite else math.nan)
            high.append(min(1.0, value + margin) if finite else math.nan)
        columns[f"{name}_ci_low"], columns[f"{name}_ci_high"] = low, high
    frame = pd.DataFrame(columns, index=pd.Index(names, name="param"))
    frame = frame.sort_values(evaluators[0], ascending=False)
    frame.attrs["trials"] = len(trials)
    top = ", ".join(str(p) for p in frame.index[:3])
    frame.attrs["hand_off"] = (
        f"To see what {top} really bring, run the tuned changes as an ablation with the tuning "
        "objective: AblationSampler(ShapleyAblation.from_study(study)) for an order-free "
        "credit of each (or AblationPath.from_study(study) for the path), then "
        "shapley_report(...) or ablation_path_report(...)."
    )
    return frame


def _estimate(
    trials: Sequence[FrozenTrial],
    evaluate: Callable[[Sequence[FrozenTrial], int], dict[str, float]],
    seed: int,
    rng: np.random.Generator,
    n_resamples: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Each parameter's importance on ``trials`` (``evaluate(trials, seed)``), and its
    standard error from random halves (NaN with fewer than two)."""
    point = evaluate(trials, seed)
    half = len(trials) // 2
    draws = [
        evaluate(
            [trials[i] for i in sorted(rng.choice(len(trials), half, replace=False))], seed + r + 1
        )
        for r in range(n_resamples)
    ]
    scale = math.sqrt(half / (len(trials) - half))  # the jackknife's finite-sample factor
    spread = {
        p: float(np.std([d.get(p, 0.0) for d in draws], ddof=1)) * scale
        if len(draws) > 1
        else math.nan
        for p in point
    }
    return point, spread


def _importances(
    directions: Sequence[StudyDirection],
    trials: Sequence[FrozenTrial],
    seed: int,
    *,
    evaluator: str,
    params: Sequence[str] | None,
    target: Callable[[FrozenTrial], float] | None,
) -> dict[str, float]:
    """Optuna's importances of ``trials`` (as a study of their own) by ``evaluator``."""
    found = optuna.importance.get_param_importances(
        _TrialsView(trials, directions),
        evaluator=EVALUATORS[evaluator](seed),
        params=None if params is None else list(params),
        target=target,
        normalize=True,
    )
    return {p: float(v) for p, v in found.items()}


class _TrialsView(optuna.Study):
    """A study that is a given list of finished trials, read in place: what the evaluators
    read, without the copy of every trial that adding them to a study of their own takes
    (most of the time of a 10,000-trial report)."""

    def __init__(self, trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]):
        storage = optuna.storages.InMemoryStorage()
        study_id = storage.create_new_study(list(directions))
        super().__init__(storage.get_study_name_from_id(study_id), storage)
        self._view = list(trials)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        found = [t for t in self._view if states is None or t.state in states]
        return copy.deepcopy(found) if deepcopy else found


def _normal_quantile(q: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(q))
