"""How a run finishes trials: callbacks and storage writes never hold up the workers, a lease
lasts until the storage has the trial's end, and the driver's log line is the trial's own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._calls import ask
from tests._calls import suggest_float
from tests._helpers import Workers

N_WORKERS = 8
N_TRIALS = 24


def test_a_blocked_callback_does_not_hold_up_any_worker(
    open_run: Callable[..., StudyRun], server: StudyServer, workers: Workers
) -> None:
    # The first callback blocks until every objective has run: before, each worker's tell
    # waited for the callbacks of the others, so no objective could run while one blocked.
    all_ran = threading.Event()
    ran: list[int] = []
    ran_lock = threading.Lock()
    called: list[int] = []

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -1, 1)
        with ran_lock:
            ran.append(trial.number)
            if len(ran) == N_TRIALS:
                all_ran.set()
        return x

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if not called:
            assert all_ran.wait(60), "the objectives waited for a callback"
        called.append(trial.number)

    run = open_run(n_trials=N_TRIALS, callbacks=[callback])
    workers.start(run.worker_spec(server.endpoint), objective, N_WORKERS)
    assert all_ran.wait(60)
    assert run.wait(60)
    workers.join()
    # Every callback has run when the run is over, once per trial, in the order the trials
    # were recorded (the order they finished).
    finished = sorted(run.study.trials, key=lambda t: (t.datetime_complete, t.number))
    assert sorted(called) == list(range(N_TRIALS))
    assert len(called) == N_TRIALS and run.error is None
    assert {t.state for t in finished} == {TrialState.COMPLETE}


def test_study_stop_in_a_callback_still_stops_the_run(
    open_run: Callable[..., StudyRun], server: StudyServer, workers: Workers
) -> None:
    def stop_after_three(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.number == 2:
            study.stop()

    run = open_run(callbacks=[stop_after_three])  # no n_trials: only stop() ends it
    workers.start(run.worker_spec(server.endpoint), lambda t: t.suggest_float("x", 0, 1), 2)
    assert run.wait(60)
    workers.join()
    assert str(run.stop_reason) == "study.stop() was called"
    assert len(run.study.trials) >= 3


class _GatedStorage(optuna.storages.InMemoryStorage):
    """Holds the first write of a finished state until the test opens the gate, then fails
    it (a database that went away)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.gate = threading.Event()

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state.is_finished() and not self.held.is_set():
            self.held.set()
            assert self.gate.wait(60)
            raise ConnectionError("the database went away")
        return super().set_trial_state_values(trial_id, state, values)


def test_a_lease_lasts_until_the_storage_has_the_trials_end() -> None:
    storage = _GatedStorage()
    study = optuna.create_study(storage=storage)
    run = StudyRun(study, n_trials=1)
    run.start()
    reply = ask(run, 1)
    assert reply is not None
    suggest_float(run, 1, reply)
    from optuna_spark.wire import messages as m

    telling = threading.Thread(
        target=run.tell, args=(1, m.TellValues(run.run_id, reply.trial_id, 1.0))
    )
    telling.start()  # its tell waits for the storage: no other request does
    assert storage.held.wait(60)
    # The only trial has been told, n_trials is reached, but its end is not in the storage:
    # the run is not over, and nothing else may act on the trial.
    assert not run.done and not run.wait(0.05)
    assert ask(run, 2) is None
    storage.gate.set()
    telling.join(60)
    assert run.wait(60)
    # The write failed: the run ends with that error and the trial is failed, not left
    # RUNNING for nobody to end.
    assert isinstance(run.error, ConnectionError)
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert "could not record it" in trial.system_attrs["optuna_spark:fail_reason"]


def test_the_log_line_of_a_trial_sampled_on_a_worker_shows_its_parameters(
    open_run: Callable[..., StudyRun],
    server: StudyServer,
    workers: Workers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO, logger="optuna"):
            run = open_run(n_trials=2, sampling="workers")
            workers.start(
                run.worker_spec(server.endpoint), lambda t: t.suggest_float("x", 2, 3), 1
            )
            assert run.wait(60)
            workers.join()
    finally:
        optuna.logging.disable_propagation()
    lines = {r.getMessage() for r in caplog.records if "finished with value" in r.getMessage()}
    assert len(lines) == 2
    for trial, line in zip(run.study.trials, sorted(lines), strict=True):
        assert f"parameters: {trial.params}" in line and "'x': " in line


def _objective_of_every_ending(trial: Any) -> float:
    x = trial.suggest_int("x", 1, 1)
    if trial.number == 1:
        raise optuna.TrialPruned(f"Trial was pruned at iteration {10 * x}.")
    if trial.number == 2:
        raise ValueError("no data")
    if trial.number == 3:
        return float("nan")
    return float(x)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Trial "):
            self.lines.append(message)


def test_the_drivers_log_lines_are_plain_optunas_word_for_word(
    open_run: Callable[..., StudyRun], server: StudyServer, workers: Workers
) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO)
    logger = logging.getLogger("optuna")
    lines = _Lines()
    logger.addHandler(lines)
    try:
        plain = optuna.create_study()
        plain.optimize(_objective_of_every_ending, n_trials=4, catch=(ValueError,))
        expected, lines.lines = lines.lines, []
        run = open_run(n_trials=4)
        workers.start(
            run.worker_spec(server.endpoint), _objective_of_every_ending, 1, catch=(ValueError,)
        )
        assert run.wait(60)
        workers.join()
    finally:
        logger.removeHandler(lines)
    assert lines.lines == expected
    assert "Trial 1 pruned. Trial was pruned at iteration 10." in expected
    assert any(line.startswith("Trial 2 failed with parameters") for line in expected)
