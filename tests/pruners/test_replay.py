"""Every built-in pruner decides through the service exactly as it does in-process.

A fixed sequence of learning curves is replayed twice: through plain ``Study.optimize`` and
through a ``StudyServer`` + ``StudyRun`` + ``run_worker`` (one worker, so that the order
of reports is the same). Every ``should_prune`` answer must match.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import optuna
import pytest

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker

N_TRIALS = 30
N_STEPS = 12


def _curves(seed: int = 0) -> np.ndarray:
    """Noisy, decreasing learning curves of different quality (a loss to minimize)."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.1, 1.0, size=N_TRIALS)
    steps = np.arange(N_STEPS)
    noise = rng.normal(0, 0.03, size=(N_TRIALS, N_STEPS))
    return quality[:, None] + 1.0 / (1.0 + steps[None, :]) + noise


PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=3),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=2
    ),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=N_STEPS, reduction_factor=2
    ),
    "threshold": lambda: optuna.pruners.ThresholdPruner(upper=1.2),
    "patient": lambda: optuna.pruners.PatientPruner(
        optuna.pruners.MedianPruner(n_startup_trials=3), patience=2
    ),
    "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.2, n_startup_steps=3),
    "nop": lambda: optuna.pruners.NopPruner(),
}


def _make_objective(
    curves: np.ndarray, answers: list[tuple[int, int, bool]]
) -> Callable[[optuna.trial.BaseTrial], float]:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        # One suggestion keeps samplers (and Hyperband's bracket filtering) in the loop.
        trial.suggest_float("x", 0.0, 1.0)
        curve = curves[trial.number]
        for step in range(N_STEPS):
            trial.report(float(curve[step]), step)
            pruned = trial.should_prune()
            answers.append((trial.number, step, pruned))
            if pruned:
                raise optuna.TrialPruned()
        return float(curve[-1])

    return objective


def _in_process(name: str, curves: np.ndarray) -> tuple[list[tuple[int, int, bool]], list[str]]:
    answers: list[tuple[int, int, bool]] = []
    study = optuna.create_study(
        study_name="replay",
        pruner=PRUNERS[name](),
        sampler=optuna.samplers.RandomSampler(seed=7),
    )
    study.optimize(_make_objective(curves, answers), n_trials=N_TRIALS)
    return answers, [t.state.name for t in study.trials]


def _through_service(
    name: str, curves: np.ndarray
) -> tuple[list[tuple[int, int, bool]], list[str]]:
    answers: list[tuple[int, int, bool]] = []
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        study = optuna.create_study(
            study_name="replay",
            storage=server.storage,
            pruner=PRUNERS[name](),
            sampler=optuna.samplers.RandomSampler(seed=7),
        )
        run = StudyRun(study, n_trials=N_TRIALS)
        run.start()
        server.add_run(run)
        spec = WorkerSpec(server.endpoint, run.run_id)
        worker = threading.Thread(target=run_worker, args=(spec, _make_objective(curves, answers)))
        worker.start()
        worker.join(timeout=60)
        assert run.wait(10)
        # The driver records when it decided each prune, and only then.
        for t in study.trials:
            assert ("optuna_spark:pruned_at" in t.system_attrs) == (t.state.name == "PRUNED")
    return answers, [t.state.name for t in study.trials]


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_pruner_decides_as_in_process(name: str) -> None:
    curves = _curves()
    expected, expected_states = _in_process(name, curves)
    got, got_states = _through_service(name, curves)
    assert got == expected
    assert got_states == expected_states
    if name != "nop":
        # The replay must exercise the pruner, or the comparison proves nothing.
        assert any(pruned for _, _, pruned in expected)
