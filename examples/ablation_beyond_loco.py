"""Which tuned changes mattered, and which features are redundant: ablations beyond LOCO.

Runs on embedded local Spark with a SQLite file as the storage, on the diabetes data that
ships with scikit-learn (442 patients, 10 features; no downloads):

1. tunes a gradient-boosting regressor;
2. walks the *ablation path* from scikit-learn's defaults to the tuned configuration, with the
   tuning objective unchanged: which of the changed parameters earned the improvement;
3. leaves features out one at a time *and in pairs* (two blood serum measurements that carry
   overlapping information), with *adaptive repeats*: arms that are decided stop early.

    python examples/ablation_beyond_loco.py                        # into outputs/
    optuna-dashboard sqlite:///outputs/ablation_beyond_loco.db     # the three studies
    python examples/ablation_beyond_loco.py --resume               # continue them

A run starts new studies, replacing those an earlier run left in the storage (it says so).
``--resume`` continues the tuning study, and the two ablations when they were run for the
configuration that the tuning now finds best (else they are replaced: their results would be
those of an earlier configuration).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold
from sklearn.model_selection import cross_val_score

from optuna_spark import SparkExecutor
from optuna_spark.ablation import AblationPath
from optuna_spark.ablation import AblationSampler
from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablate_data
from optuna_spark.ablation import ablation_path_report
from optuna_spark.ablation import ablation_report
from optuna_spark.ablation import get_arm

#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")

#: Where the ablation path starts: scikit-learn's defaults (``l2_regularization`` is 0 there,
#: below the log-scale range searched, so its smallest value stands in).
DEFAULTS = {
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 1e-6,
}


def _mae(model: HistGradientBoostingRegressor, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    folds = KFold(n_splits=4, shuffle=True, random_state=seed)
    return float(-cross_val_score(model, x, y, cv=folds, scoring="neg_mean_absolute_error").mean())


def tuning_objective(trial: optuna.trial.BaseTrial) -> float:
    """Cross-validated mean absolute error of one configuration (a fixed split)."""
    x, y = load_diabetes(return_X_y=True)
    model = HistGradientBoostingRegressor(
        learning_rate=trial.suggest_float("learning_rate", 1e-3, 0.5, log=True),
        max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 2, 64, log=True),
        min_samples_leaf=trial.suggest_int("min_samples_leaf", 2, 80),
        l2_regularization=trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        max_iter=100,
        random_state=0,
    )
    return _mae(model, x, y, seed=0)


def feature_objective(trial: optuna.trial.BaseTrial) -> float:
    """The tuned model without the arm's features, on the repeat's own cross-validation split."""
    arm = get_arm(trial)
    data = load_diabetes(as_frame=True).frame
    data = ablate_data(arm, data, label="target")
    tuned = trial.study.user_attrs["tuned"]  # the best parameters of the tuning study
    model = HistGradientBoostingRegressor(**tuned, max_iter=100, random_state=0)
    x, y = data.drop(columns="target").to_numpy(), data["target"].to_numpy()
    return _mae(model, x, y, seed=arm.seed)


def open_study(
    resume: bool, made_for: dict[str, Any] | None = None, **kwargs: Any
) -> optuna.Study:
    """``optuna.create_study(**kwargs)``: a new study, or with ``resume`` the earlier run's.

    Says which. A study of the same name left by an earlier run is replaced (deleted first),
    unless ``resume`` is set and the study was made for the tuned parameters ``made_for``:
    then it is continued.

    Args:
        resume: Continue the earlier run's study rather than replace it.
        made_for: The tuned parameters the study is for (recorded as its user attribute
            ``tuned``); ``None`` for the tuning study itself.
        **kwargs: ``optuna.create_study``'s arguments, ``study_name`` and ``storage`` included.
    """
    name, storage = kwargs["study_name"], kwargs["storage"]
    earlier = None
    if name in optuna.get_all_study_names(storage):
        earlier = optuna.load_study(study_name=name, storage=storage)
    stale = (
        made_for is not None
        and earlier is not None
        and earlier.user_attrs.get("tuned") != made_for
    )
    if earlier is not None and (stale or not resume):
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(load_if_exists=True, **kwargs)
    if made_for is not None:
        study.set_user_attr("tuned", made_for)
    if earlier is None:
        print(f"Study {name!r} in {storage}: new.")
    elif not resume:
        print(f"Study {name!r} in {storage}: replaced the earlier run's (--resume continues it).")
    elif stale:
        print(f"Study {name!r} in {storage}: replaced (it was for another tuned configuration).")
    else:
        print(f"Study {name!r} in {storage}: resumed, {len(study.trials)} trials so far.")
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=40, help="tuning trials this run adds")
    parser.add_argument("--max-repeats", type=int, default=12, help="most repeats per arm")
    parser.add_argument("--n-workers", type=int, default=2, help="concurrent Spark tasks")
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/ablation_beyond_loco.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's studies")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    storage = args.storage
    executor = SparkExecutor(n_workers=args.n_workers)

    # 1. Tune, starting from the defaults.
    tuned = open_study(args.resume, study_name="tuning", storage=storage)
    if not tuned.trials:
        tuned.enqueue_trial(DEFAULTS)
    executor.optimize(tuned, tuning_objective, n_trials=args.n_trials, show_progress_bar=True)
    print(f"\ndefaults: MAE {tuned.trials[0].value:.2f}; tuned: MAE {tuned.best_value:.2f}")

    # 2. The ablation path from the defaults to the best configuration: with n parameters
    # changed, n (n + 1) / 2 + 1 configurations (the progress bar's total).
    path = AblationPath.from_study(tuned, source=DEFAULTS)
    path_study = open_study(
        args.resume,
        made_for=tuned.best_params,
        study_name="ablation-path",
        storage=storage,
        sampler=AblationSampler(path, seed=0),
    )
    n = len(path.params)
    left = n * (n + 1) // 2 + 1 - len(path_study.trials)
    executor.optimize(path_study, tuning_objective, n_trials=left, show_progress_bar=True)
    report = ablation_path_report(path_study)
    print("\nablation path (MAE; gain = how much lower than the step before):")
    steps = report[["step", "param", "from_value", "to_value", "mean", "gain", "share"]]
    print(steps.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

    # 3. Features left out alone and in pairs, with adaptive repeats: arms that are decided
    # stop early, so the sampler's n_trials (every arm at the most repeats) is a bound.
    features = load_diabetes().feature_names
    sampler = LOCOSampler(
        features=features,
        pairs=[("s1", "s2"), ("bmi", "s5")],
        n_repeats=(3, args.max_repeats),
        seed=0,
    )
    loco = open_study(
        args.resume,
        made_for=tuned.best_params,
        study_name="features",
        storage=storage,
        sampler=sampler,
    )
    print(f"\nfeature ablation: {len(sampler.arms)} arms, at most {sampler.n_trials} trials")
    left = sampler.n_trials - len(loco.trials)
    executor.optimize(loco, feature_objective, n_trials=left, show_progress_bar=True)
    table = ablation_report(loco)
    fixed = sampler.n_trials
    print(f"\nfeature ablation: {len(loco.trials)} trials ({fixed} with fixed repeats); MAE:")
    columns = ["arm", "n", "diff", "diff_ci_low", "diff_ci_high", "significant", "stopped"]
    print(table[[*columns, "finding"]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
