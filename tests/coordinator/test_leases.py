"""The lease table: who runs which trial, heartbeats, and the two deadlines."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark.coordinator._leases import LeaseTable
from optuna_spark.coordinator._leases import worker_record
from optuna_spark.wire import messages as m


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _table(clock: _Clock, **kwargs: Any) -> tuple[LeaseTable, list[optuna.Trial]]:
    study = optuna.create_study()
    trials = [study.ask() for _ in range(3)]
    table = LeaseTable(clock=clock, **kwargs)
    for i, trial in enumerate(trials):
        table.grant(trial._trial_id, trial, conn_id=i % 2, worker={"host": f"h{i}"})
    return table, trials


def test_a_silent_lease_expires_as_lost_and_a_heartbeat_keeps_it() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0)
    ids = [t._trial_id for t in trials]
    clock.now += 8
    assert table.heartbeat(ids[:2]) == []  # two of three beat
    clock.now += 8
    expired = table.expired()
    assert [e.trial_id for e in expired] == [ids[2]]
    assert expired[0].lost and "no heartbeat for 16.0 s (grace 10 s)" in expired[0].reason


def test_a_trial_past_its_timeout_expires_as_not_lost() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0, trial_timeout=5.0)
    clock.now += 6
    table.heartbeat([t._trial_id for t in trials])
    expired = table.expired()
    assert len(expired) == 3 and not any(e.lost for e in expired)
    assert "ran longer than 5 s" in expired[0].reason


def test_a_released_lease_says_why_it_ended_by_trial_number() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0)
    trial_id = trials[1]._trial_id
    table.release(trial_id, ended_by_driver="timeout: too slow")
    with pytest.raises(UpdateFinishedTrialError, match=r"Trial 1 is no longer running.*too slow"):
        table.touch(trial_id)
    with pytest.raises(UpdateFinishedTrialError, match=r"id 12345 .*not running in this"):
        table.touch(12345)
    assert table.heartbeat([trial_id]) == [trial_id]
    assert trial_id not in table and len(table) == 2


def test_leases_are_found_by_connection() -> None:
    table, trials = _table(_Clock(), heartbeat_grace=10.0)
    assert table.held_by(0) == [trials[0]._trial_id, trials[2]._trial_id]
    assert table.held_by(1) == [trials[1]._trial_id]
    assert table.held_by(7) == []


def test_the_worker_record_flattens_extra_and_names_the_run() -> None:
    info = m.WorkerInfo(host="h", pid=3, partition=1, extra={"rack": "r2"})
    assert worker_record(info, "run") == {
        "host": "h",
        "pid": 3,
        "partition": 1,
        "rack": "r2",
        "run_id": "run",
    }


def test_a_lease_whose_worker_is_waiting_on_the_driver_does_not_expire() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0)
    table.touch(trials[0]._trial_id).busy += 1  # a suggestion waiting for the sampler
    clock.now += 60
    assert [e.trial_id for e in table.expired()] == [t._trial_id for t in trials[1:]]
