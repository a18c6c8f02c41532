"""A slow database: reports and pruning answers do not wait for its writes.

The pruner decides from the trial's reports as the run received them, written or not; the
reports are written behind the worker's back, in order, and all of them before the trial's
end is. A pruner that waits for the database does not make its trial look lost.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import RunConfig
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers

pytestmark = pytest.mark.timeout(60)

N_STEPS = 5


class _StalledWrites(InMemoryStorage):
    """Writes of intermediate values wait until ``flowing`` is set (a database whose writes
    take as long as the test wants); every other call is as fast as ever."""

    def __init__(self) -> None:
        super().__init__()
        self.flowing = threading.Event()
        self.written: list[int] = []

    def set_trial_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        assert self.flowing.wait(30), "the writes were never let through"
        super().set_trial_intermediate_value(trial_id, step, value)
        self.written.append(step)


class _PruneAtStep(optuna.pruners.BasePruner):
    """Prunes a trial once it has reported step ``N_STEPS - 1``."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return trial.last_step == N_STEPS - 1


def test_reports_and_pruning_answers_do_not_wait_for_a_slow_database(workers: Workers) -> None:
    storage = _StalledWrites()
    answered = threading.Event()
    answers: list[bool] = []

    def objective(trial: RemoteTrial) -> float:
        for step in range(N_STEPS):
            trial.report(float(step), step)
            answers.append(trial.should_prune())
        answered.set()  # before: the first pruning question waited for the first write
        if answers[-1]:
            raise optuna.TrialPruned()
        return 0.0

    with StudyServer(storage) as server:
        study = optuna.create_study(storage=storage, pruner=_PruneAtStep())
        run = StudyRun(study, n_trials=1)
        server.add_run(run)
        workers.start(run.worker_spec(server.endpoint), objective, 1)
        # Every report was taken and every question answered while no write got through.
        assert answered.wait(30)
        assert answers == [False] * (N_STEPS - 1) + [True]
        assert storage.written == []
        assert study.trials[0].state == TrialState.RUNNING  # its end waits for its reports

        storage.flowing.set()
        assert run.wait(30)
        workers.join()
    trial = study.trials[0]
    assert storage.written == list(range(N_STEPS))  # in the order they came
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {step: float(step) for step in range(N_STEPS)}
    assert "optuna_spark:pruned_at" in trial.system_attrs


def _report_twice(trial: Any) -> float:
    trial.report(1.0, 0)
    trial.report(2.0, 0)  # Optuna ignores a step reported already, with a warning
    return 0.0


def test_a_step_reported_twice_keeps_its_first_value(workers: Workers) -> None:
    with StudyServer(InMemoryStorage()) as server:
        study = optuna.create_study(storage=server.storage)
        run = StudyRun(study, n_trials=1)
        server.add_run(run)
        with pytest.warns(UserWarning, match="already reported"):
            workers.start(run.worker_spec(server.endpoint), _report_twice, 1)
            assert run.wait(30)
            workers.join()
    assert study.trials[0].intermediate_values == {0: 1.0}


class _Clock:
    """The run's monotonic seconds, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _StalledPruner(optuna.pruners.BasePruner):
    """Reads the study (as a database would answer it: after ``answer`` is set)."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.answer = threading.Event()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        self.asked.set()
        assert self.answer.wait(30), "the test never let the pruner answer"
        return False


def test_a_trial_whose_pruner_waits_for_the_database_is_not_taken_for_lost(
    workers: Workers,
) -> None:
    # The worker's heartbeats wait behind its pruning question on its one connection: while
    # the pruner waits for a slow database, the driver must not count that silence.
    pruner = _StalledPruner()
    clock = _Clock()
    with StudyServer(InMemoryStorage()) as server:
        study = optuna.create_study(storage=server.storage, pruner=pruner)
        config = RunConfig(n_trials=1, heartbeat_grace=2.0)
        run = StudyRun.from_config(study, config, clock=clock)
        server.add_run(run)

        def objective(trial: RemoteTrial) -> float:
            trial.report(1.0, 0)
            return 1.0 if not trial.should_prune() else 0.0  # the pruner says: go on

        workers.start(run.worker_spec(server.endpoint), objective, 1)
        assert pruner.asked.wait(30)
        clock.now += 10.0  # five graces without a word from the worker
        run.tick()
        assert study.trials[0].state == TrialState.RUNNING
        pruner.answer.set()
        assert run.wait(30)
        workers.join()
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].value == 1.0
