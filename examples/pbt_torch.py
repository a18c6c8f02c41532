"""Population Based Training of a PyTorch network: the learning rate and dropout as schedules.

A small network learns scikit-learn's digits (shipped with it: no downloads). Each trial is
one segment of one member of the population: it loads the checkpoint it starts from (its
member's last one, or after an exploit a better member's), trains a few epochs with its
learning rate and dropout, reports the validation accuracy and saves its checkpoint. The
bottom quarter of the population copies the top quarter and perturbs its hyperparameters;
no worker waits for a generation to finish. The study ends by itself.

    python examples/pbt_torch.py                    # 8 members x 5 segments on 4 workers
    optuna-dashboard sqlite:///outputs/pbt_torch.db
    python examples/pbt_torch.py --resume           # continues an unfinished population

A run starts a new study, replacing the one an earlier run left in the storage (it says so);
``--resume`` continues that one instead, with the same members and lineage.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_spark import SparkExecutor
from optuna_spark import checkpoint
from optuna_spark.pbt import PBTSampler
from optuna_spark.pbt import get_segment
from optuna_spark.pbt import pbt_report

if TYPE_CHECKING:
    import torch

#: Where the examples write what they make (a folder that git ignores).
OUTPUTS = Path("outputs")


def data() -> tuple[torch.Tensor, ...]:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X / 16.0, y, random_state=0)
    return (
        torch.tensor(X_train, dtype=torch.float32),
        torch.tensor(y_train),
        torch.tensor(X_valid, dtype=torch.float32),
        torch.tensor(y_valid),
    )


def network(dropout: float) -> torch.nn.Sequential:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(64, 10),
    )


def objective(trial: optuna.trial.BaseTrial, epochs: int) -> float:
    """One segment: ``epochs`` epochs from the checkpoint it starts from."""
    import torch  # imported where it runs: a Spark worker, or this process

    torch.manual_seed(trial.number)
    torch.set_num_threads(1)
    lr = trial.suggest_float("lr", 1e-4, 0.5, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.6)
    segment = get_segment(trial)
    assert segment is not None
    model = network(dropout)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    start = checkpoint.load(trial)  # type: ignore[arg-type]
    if start is not None:  # its parent's weights and optimizer state
        saved = torch.load(start.path / "model.pt")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr  # this segment's learning rate (a perturbed one after an exploit)
    X_train, y_train, X_valid, y_valid = data()
    accuracy = 0.0
    for epoch in range(epochs):
        model.train()
        for batch in torch.randperm(len(X_train)).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(X_valid).argmax(1) == y_valid).float().mean())
        trial.report(accuracy, segment.generation * epochs + epoch)
    with tempfile.TemporaryDirectory() as tmp:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        torch.save(state, Path(tmp) / "model.pt")
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
    parser.add_argument("--storage", default=f"sqlite:///{OUTPUTS}/pbt_torch.db")
    parser.add_argument("--resume", action="store_true", help="continue the earlier run's study")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    OUTPUTS.mkdir(exist_ok=True)
    study = open_study(
        args.resume,
        study_name="pbt-torch",
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
