"""Early stopping across Spark workers: pruners on the driver, global control of trials."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import make_server

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]

N_STEPS = 9
# Enqueued in this order: a few medium configurations first, then bad and good ones mixed.
QUALITIES = [0.5, 0.3, 0.6, 0.4, 0.9, 0.1, 0.8, 0.15, 0.95, 0.05, 0.85, 0.2]
BAD = {0.8, 0.85, 0.9, 0.95}
GOOD = {0.05, 0.1, 0.15}


def learning_curve(trial: optuna.trial.BaseTrial) -> float:
    """A loss curve q + 1/(step+1): the quality q decides the ranking at every step."""
    q = trial.suggest_float("q", 0.0, 1.0)
    for step in range(N_STEPS):
        time.sleep(0.03)
        loss = q + 1.0 / (step + 1)
        trial.report(loss, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return q + 1.0 / N_STEPS


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_startup_trials=3),
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=N_STEPS, reduction_factor=3),
    ],
    ids=["median", "successive_halving", "hyperband"],
)
def test_pruners_stop_bad_configurations_and_keep_good_ones(
    spark: object, pruner: optuna.pruners.BasePruner
) -> None:
    study = optuna.create_study(study_name="curves", pruner=pruner)
    for q in QUALITIES:
        study.enqueue_trial({"q": q})
    SparkExecutor(spark, n_workers=2).optimize(  # type: ignore[arg-type]
        study, learning_curve, n_trials=len(QUALITIES)
    )
    by_q = {t.params["q"]: t for t in study.trials}
    assert set(by_q) == set(QUALITIES)
    bad_pruned = [q for q in BAD if by_q[q].state == TrialState.PRUNED]
    assert len(bad_pruned) >= 3, {q: by_q[q].state.name for q in BAD}
    assert by_q[0.05].state == TrialState.COMPLETE
    assert study.best_params["q"] in GOOD
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    assert epochs < 0.8 * N_STEPS * len(QUALITIES)


def test_timeout_reaches_running_trials_at_their_next_report(executor: SparkExecutor) -> None:
    def endless(trial: optuna.trial.BaseTrial) -> float:
        for step in range(10_000):
            time.sleep(0.1)
            trial.report(float(step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.0

    study = optuna.create_study()
    t0 = time.monotonic()
    executor.optimize(study, endless, timeout=4.0)
    assert time.monotonic() - t0 < 30
    assert 1 <= len(study.trials) <= 2
    for t in study.trials:
        assert t.state == TrialState.PRUNED
        assert t.system_attrs["optuna_spark:interrupted"] == "timeout"


def test_study_stop_from_a_worker_reaches_the_other_running_trial(
    executor: SparkExecutor,
) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        if trial.number == 1:
            time.sleep(1.0)
            trial.study.stop()
            return 1.0
        for step in range(600):
            time.sleep(0.05)
            trial.report(float(step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.0

    study = optuna.create_study()
    study.enqueue_trial({})
    t0 = time.monotonic()
    executor.optimize(study, objective, n_trials=50)
    assert time.monotonic() - t0 < 15
    states = {t.number: t.state for t in study.trials}
    assert states[1] == TrialState.COMPLETE
    assert states[0] == TrialState.PRUNED
    assert "study.stop()" in study.trials[0].system_attrs["optuna_spark:interrupted"]


def test_trial_timeout_frees_the_slot_of_a_trial_that_never_returns(spark: object) -> None:
    def objective(trial: optuna.trial.BaseTrial) -> float:
        if trial.number == 0:
            time.sleep(3600)
        time.sleep(0.5)
        return float(trial.number)

    executor = SparkExecutor(
        spark,  # type: ignore[arg-type]
        n_workers=2,
        trial_timeout=3.0,
        stuck_grace=1.0,
        heartbeat_interval=0.5,
        heartbeat_grace=10.0,
    )
    study = optuna.create_study()
    t0 = time.monotonic()
    executor.optimize(study, objective, n_trials=16)
    assert time.monotonic() - t0 < 60
    assert len(study.trials) == 16
    stuck = study.trials[0]
    assert stuck.state == TrialState.FAIL
    assert stuck.system_attrs["optuna_spark:fail_reason"].startswith("timeout")
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 15
    # The stuck worker exited and Spark retried its task, which ran trials again.
    attempts = [t.system_attrs["optuna_spark:worker"]["attempt"] for t in study.trials]
    assert max(attempts) >= 1


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_dashboard_shows_learning_curves_of_running_trials(
    executor: SparkExecutor, tmp_path: object
) -> None:
    import optuna_dashboard

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="live", storage=storage)

    def slow_curve(trial: optuna.trial.BaseTrial) -> float:
        for step in range(40):
            trial.report(1.0 / (step + 1), step)
            time.sleep(0.1)
        return 0.0

    app = optuna_dashboard.wsgi(storage)
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/api/studies/{study._study_id}"
    seen: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            with urllib.request.urlopen(url, timeout=5) as reply:
                data = json.load(reply)
            for t in data.get("trials", []):
                if t["state"] == "Running" and len(t["intermediate_values"]) >= 3:
                    seen.append(len(t["intermediate_values"]))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        executor.optimize(study, slow_curve, n_trials=2)
    finally:
        watcher.join()
        server.shutdown()
        server.server_close()
    assert seen, "the dashboard never showed intermediate values of a running trial"
