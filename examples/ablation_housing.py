"""Which inputs and layers does a house-price network need? A LOCO ablation on Spark.

The houses are generated here, so the right answer is known:

    price (k$) = 3 * area + 25 * floors + 8 * rooms + noise(sd 20)

with ``area`` (m^2) the strongest input, ``floors`` next, ``rooms`` small and correlated with
``area`` (so leaving it out costs little: the network learns it from ``area``), and ``noise``
an input with no effect at all. The network has named dense layers (``hidden_1``,
``hidden_2``, ``hidden_3``, ``price``) and standardizes its inputs (a component the objective
can switch off).

``LOCOSampler`` makes each arm (the base, and each feature, layer, group of layers and
component left out) an Optuna trial, ``--n-repeats`` times with paired seeds; the study runs on
embedded Spark through ``SparkExecutor`` and ends by itself. The report gives each arm's mean
validation error, its difference from the base with a 95% confidence interval, and whether
that difference is significant after Holm's correction for the number of arms. Expect (with
the default 5 repeats) ``area`` and ``floors`` to be significant; ``standardize`` to cost a lot
on average but so unevenly across seeds that its interval includes 0; and ``rooms`` (learned
from ``area``), ``noise`` and the hidden layers to change nothing that matters.

    pip install "optuna-spark[tensorflow]"
    python examples/ablation_housing.py                     # on embedded Spark
    python examples/ablation_housing.py --local             # plain study.optimize, no Spark
    python examples/ablation_housing.py --storage sqlite:///outputs/ablation.db
    optuna-dashboard sqlite:///outputs/ablation.db          # arms in params and user attrs

The plot goes to ``outputs/ablation_housing.html``. The study is in memory unless
``--storage`` names one; there, a run replaces the study an earlier run left (it says so), and
``--resume`` continues it instead (the arms and repeats not run yet).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablate_data
from optuna_spark.ablation import ablate_model
from optuna_spark.ablation import ablation_report
from optuna_spark.ablation import get_arm
from optuna_spark.ablation import is_enabled
from optuna_spark.ablation import plot_ablation

FEATURES = ["floors", "area", "rooms", "noise"]
LABEL = "price"
#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")


def make_houses(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Houses with a known price structure (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40.0, 250.0, n)
    floors = rng.integers(1, 4, n).astype(float)
    rooms = np.clip(np.round(area / 35.0 + rng.normal(0.0, 0.8, n)), 1, 8)
    noise = rng.normal(0.0, 1.0, n)
    price = 3.0 * area + 25.0 * floors + 8.0 * rooms + rng.normal(0.0, 20.0, n)
    return pd.DataFrame(
        {"floors": floors, "area": area, "rooms": rooms, "noise": noise, LABEL: price}
    )


def build_model(n_features: int) -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(32, activation="relu", name="hidden_1"),
            keras.layers.Dense(32, activation="relu", name="hidden_2"),
            keras.layers.Dense(32, activation="relu", name="hidden_3"),
            keras.layers.Dense(1, name="price"),
        ],
        name="house_prices",
    )


def objective(trial: optuna.trial.BaseTrial, epochs: int) -> float:
    """Validation mean absolute error (k$) of the network of this trial's arm."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")  # one core per Spark task
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import keras

    arm = get_arm(trial)  # the arm; also suggests the "loco_arm" and "loco_repeat" params
    keras.utils.set_random_seed(arm.seed)  # the same seed in every arm of this repeat

    houses = make_houses()
    valid = houses.sample(frac=0.25, random_state=arm.seed)  # the same split in every arm
    train = houses.drop(valid.index)
    train, valid = (ablate_data(arm, df, label=LABEL) for df in (train, valid))
    features = [c for c in train.columns if c != LABEL]

    x_train, x_valid = train[features].to_numpy(), valid[features].to_numpy()
    if is_enabled(arm, "standardize"):
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        x_train, x_valid = (x_train - mean) / std, (x_valid - mean) / std
    scale = float(train[LABEL].std())  # train on a unit-scale target, report in k$

    model = ablate_model(arm, lambda: build_model(len(features)))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x_train, train[LABEL] / scale, epochs=epochs, batch_size=64, verbose=0)
    predicted = np.asarray(model(x_valid, training=False))[:, 0] * scale
    return float(np.mean(np.abs(predicted - valid[LABEL].to_numpy())))


class Objective:
    """A picklable objective with its settings (Spark ships it to the workers)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        return objective(trial, self.epochs)


def open_study(resume: bool, **kwargs: Any) -> optuna.Study:
    """``optuna.create_study(**kwargs)``: a new study, or with ``resume`` the earlier run's.

    Says which: a study of the same name left in the storage by an earlier run is replaced
    (deleted first) unless ``resume`` is set, and then continued. In memory it is always new.

    Args:
        resume: Continue the earlier run's study rather than replace it.
        **kwargs: ``optuna.create_study``'s arguments, ``study_name`` and ``storage`` included.
    """
    name, storage = kwargs["study_name"], kwargs["storage"]
    if storage is None:
        print(f"Study {name!r} in memory: new (--storage keeps a study).")
        return optuna.create_study(**kwargs)
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


def trials_left(study: optuna.Study, sampler: LOCOSampler) -> int:
    """How many (arm, repeat) pairs the study has not run yet: the progress bar's total."""
    taken = {
        (t.user_attrs["loco_arm"], t.user_attrs["loco_repeat"])
        for t in study.trials
        if "loco_arm" in t.user_attrs and "loco_repeat" in t.user_attrs
    }
    return sampler.n_trials - len(taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n-repeats", type=int, default=5, help="seeds per arm")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n-workers", type=int, default=2, help="concurrent Spark tasks")
    parser.add_argument("--local", action="store_true", help="plain study.optimize, no Spark")
    parser.add_argument("--storage", default=None, help="an Optuna storage URL")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's study")
    parser.add_argument("--out", default=str(OUTPUTS / "ablation_housing.html"), help="the plot")
    args = parser.parse_args()

    sampler = LOCOSampler(
        features=FEATURES,
        layers=["hidden_2"],
        layer_groups={"deep": ["hidden_2", "hidden_3"]},
        components=["standardize"],
        n_repeats=args.n_repeats,
        seed=0,
    )
    OUTPUTS.mkdir(exist_ok=True)
    study = open_study(
        args.resume,
        study_name="ablation-housing",
        storage=args.storage,
        direction="minimize",
        sampler=sampler,
    )
    print(f"{len(sampler.arms)} arms x {sampler.n_repeats} repeats = {sampler.n_trials} trials")

    executor = None
    if not args.local:
        try:
            from optuna_spark import SparkExecutor
        except ImportError:
            print("optuna_spark.SparkExecutor is not available; running in this process.")
        else:
            executor = SparkExecutor(n_workers=args.n_workers)
    # The sampler ends the study by itself when every arm has run all its repeats; the number
    # of trials left gives the progress bar its total and ETA.
    n_trials = trials_left(study, sampler)
    if executor is not None:
        executor.optimize(study, Objective(args.epochs), n_trials=n_trials, show_progress_bar=True)
    else:
        study.optimize(Objective(args.epochs), n_trials=n_trials, show_progress_bar=True)

    report = ablation_report(study)
    print(
        "mean: the arm's validation MAE in thousands of dollars (lower is better); diff: the "
        "arm minus the base, with its 95% CI; p_holm: Holm-corrected p-value"
    )
    columns = ["arm", "n", "mean", "diff", "diff_ci_low", "diff_ci_high", "p_holm", "significant"]
    shown = report[columns].astype(object)
    # The base is what the others are compared with: no difference of its own to show.
    shown.loc[shown["arm"] == "base", columns[3:]] = "-"
    with pd.option_context("display.width", 120, "display.precision", 3):
        print(shown.to_string(index=False))
    plot_ablation(study, target_name="Validation MAE (k$)").write_html(args.out)
    print(f"Plot saved to {args.out}")


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    main()
