"""Tune one model per segment, all studies at once on one Spark job and one pool of workers.

Each segment of a (generated) sales table gets its own study, its own TPE sampler and its own
best model; ``SparkExecutor.optimize_many`` runs all of them on the same workers, each
worker taking its next trial from the study that most needs one. With one trial in flight
per study (``--max-concurrent-trials 1``) each study's TPE learns from every result of its
own before its next trial, as a sequential ``study.optimize`` would, while the workers stay
busy with the other studies.

    python examples/many_studies.py                      # 8 segments x 12 trials, 2 workers
    optuna-dashboard sqlite:///outputs/many_studies.db   # one study per segment
    python examples/many_studies.py --resume             # 12 more trials per segment

A run starts new studies, replacing those an earlier run left in the storage (it says so);
``--resume`` continues them instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optuna
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import cross_val_score

from optuna_spark import SparkExecutor

#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")


def segment_data(segment: int) -> tuple[np.ndarray, np.ndarray]:
    """The sales of one segment: the same features, a response of the segment's own shape."""
    rng = np.random.default_rng(segment)
    X = rng.normal(size=(400, 6))
    weights = rng.normal(size=6) * (1 + segment % 3)
    y = X @ weights + np.sin(3 * X[:, segment % 6]) * (segment % 4) + rng.normal(size=400)
    return X, y


def objective(trial: optuna.trial.BaseTrial) -> float:
    """Cross-validated mean squared error of one segment's model (the study's name says which
    segment: ``segment-<k>``)."""
    segment = int(trial.study.study_name.rsplit("-", 1)[1])
    X, y = segment_data(segment)
    model = HistGradientBoostingRegressor(
        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
        max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 4, 48, log=True),
        l2_regularization=trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        max_iter=60,
        random_state=0,
    )
    return float(-cross_val_score(model, X, y, cv=3, scoring="neg_mean_squared_error").mean())


def open_studies(resume: bool, n_segments: int, storage_url: str) -> list[optuna.Study]:
    """One study per segment on one storage: new ones, or with ``resume`` the earlier run's."""
    storage = optuna.storages.RDBStorage(storage_url)  # one storage object for all studies
    names = [f"segment-{k}" for k in range(n_segments)]
    earlier = set(optuna.get_all_study_names(storage)) & set(names)
    if earlier and not resume:
        for name in sorted(earlier):
            optuna.delete_study(study_name=name, storage=storage)
    studies = [
        optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=k, n_startup_trials=4),
            load_if_exists=True,
        )
        for k, name in enumerate(names)
    ]
    n_so_far = sum(len(s.trials) for s in studies)
    if not earlier:
        print(f"{n_segments} studies in {storage_url}: new.")
    elif resume:
        print(f"{n_segments} studies in {storage_url}: resumed, {n_so_far} trials so far.")
    else:
        print(
            f"{n_segments} studies in {storage_url}: replaced the earlier run's "
            "(--resume continues them)."
        )
    return studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-segments", type=int, default=8, help="studies, one per segment")
    parser.add_argument("--n-trials", type=int, default=12, help="trials per study")
    parser.add_argument("--max-concurrent-trials", type=int, default=1, help="per study")
    parser.add_argument("--n-workers", type=int, default=2, help="concurrent Spark tasks")
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/many_studies.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier studies")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    studies = open_studies(args.resume, args.n_segments, args.storage)
    SparkExecutor(n_workers=args.n_workers).optimize_many(
        studies,
        objective,
        n_trials=args.n_trials,
        max_concurrent_trials=args.max_concurrent_trials,
        show_progress_bar=True,
    )
    for study in studies:
        print(
            f"{study.study_name}: {len(study.trials)} trials, best MSE {study.best_value:.3f} "
            f"(learning_rate={study.best_params['learning_rate']:.3g})"
        )
    print(f"watch or inspect them: optuna-dashboard {args.storage}")


if __name__ == "__main__":
    main()
