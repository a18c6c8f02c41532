"""Population Based Training of a Keras network: the learning rate and dropout as schedules.

A small network learns scikit-learn's digits (shipped with it: no downloads). Each trial is
one segment of one member of the population: it loads the weights it starts from (its
member's last ones, or after an exploit a better member's), trains a few epochs with its
learning rate and dropout, reports the validation accuracy and saves its weights. The
bottom quarter of the population copies the top quarter and perturbs its hyperparameters;
no worker waits for a generation to finish. The study ends by itself.

    python examples/pbt_keras.py                    # 8 members x 5 segments on 4 workers
    optuna-dashboard sqlite:///outputs/pbt_keras.db
    python examples/pbt_keras.py --resume           # continues an unfinished population

A run starts a new study, replacing the one an earlier run left in the storage (it says so);
``--resume`` continues that one instead, with the same members and lineage.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint
from optuna_spark.pbt import PBTSampler
from optuna_spark.pbt import get_segment
from optuna_spark.pbt import pbt_report

#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")


def objective(trial: optuna.trial.BaseTrial, epochs: int) -> float:
    """One segment: ``epochs`` epochs from the weights it starts from."""
    # TensorFlow's native start-up lines go to the worker's stderr, not through Python: keep
    # them out of the driver's screen (oneDNN's notice is the one it prints on a CPU).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(trial.number)
    lr = trial.suggest_float("lr", 1e-4, 0.5, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.6)
    segment = get_segment(trial)
    assert segment is not None
    # Dropout has no weights: the new rate is a new layer, the weights are its parent's.
    model = keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    start = checkpoint.load(trial)  # type: ignore[arg-type]
    if start is not None:
        model.load_weights(start.path / "model.weights.h5")
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    X, y = load_digits(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X / 16.0, y, random_state=0)
    accuracy = 0.0
    for epoch in range(epochs):
        model.fit(X_train, y_train, batch_size=64, epochs=1, verbose=0)
        accuracy = float(model.evaluate(X_valid, y_valid, verbose=0)[1])
        trial.report(accuracy, segment.generation * epochs + epoch)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_weights(Path(tmp) / "model.weights.h5")
        checkpoint.save(trial, tmp, step=(segment.generation + 1) * epochs)  # type: ignore[arg-type]
    return accuracy


class Segments:
    """The objective with its epochs per segment (a picklable callable for Spark)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        return objective(trial, self.epochs)


def open_study(resume: bool, **kwargs: Any) -> optuna.Study:
    """``optuna.create_study(**kwargs)``: a new study, or with ``resume`` the earlier run's.

    Says which: a study of the same name left by an earlier run is replaced (deleted first)
    unless ``resume`` is set, and then continued.

    Args:
        resume: Continue the earlier run's study rather than replace it.
        **kwargs: ``optuna.create_study``'s arguments, ``study_name`` and ``storage`` included.
    """
    name, storage = kwargs["study_name"], kwargs["storage"]
    earlier = name in optuna.get_all_study_names(storage)
    if earlier and not resume:
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(load_if_exists=True, **kwargs)
    if not earlier:
        print(f"Study {name!r} in {storage}: new.")
    elif resume:
        print(f"Study {name!r} in {storage}: resumed, {len(study.trials)} trials so far.")
    else:
        print(f"Study {name!r} in {storage}: replaced the earlier run's (--resume continues it).")
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8, help="members trained together")
    parser.add_argument("--n-generations", type=int, default=5, help="segments per member")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per segment")
    parser.add_argument("--n-workers", type=int, default=4, help="concurrent Spark tasks")
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/pbt_keras.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's study")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    study = open_study(
        args.resume,
        study_name="pbt-keras",
        storage=args.storage,
        direction="maximize",
        sampler=PBTSampler(args.population, args.n_generations, seed=0),
    )
    # The population ends the study: no n_trials. A lost worker's segment resumes elsewhere.
    executor = SparkExecutor(n_workers=args.n_workers, resume_lost_trials=2)
    executor.optimize(study, Segments(args.epochs), show_progress_bar=True)
    report(study, args.storage)


def report(study: optuna.Study, storage: str) -> None:
    result = pbt_report(study)
    segments = result.segments
    exploits = int(segments["exploited"].notna().sum())
    print(
        f"population: {segments['member'].nunique()} members, {len(segments)} segments, "
        f"{exploits} exploits"
    )
    print(
        f"best member {result.best_member}: accuracy {study.trials[result.best_trial].value:.4f}"
    )
    print("its schedule (what to train with), segment by segment:")
    for index, row in result.schedule.iterrows():
        print(
            f"  segment {index}: trial {int(row['trial'])} (member {int(row['member'])}) "
            f"lr={row['lr']:.4g} dropout={row['dropout']:.3f} accuracy={row['score']:.4f}"
        )
    print(f"watch or inspect it: optuna-dashboard {storage}")


if __name__ == "__main__":
    main()
