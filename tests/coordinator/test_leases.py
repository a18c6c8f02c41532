"""The lease table: who runs which trial, heartbeats, and the two deadlines."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark._coordinator._leases import MAX_OUTPUT_CHARS
from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark._coordinator._leases import worker_record
from optuna_spark._optuna_adapter import trial_id_of
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
        table.grant(trial_id_of(trial), trial, conn_id=i % 2, worker={"host": f"h{i}"})
    return table, trials


def test_a_silent_lease_expires_as_lost_and_a_heartbeat_keeps_it() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0)
    ids = [trial_id_of(t) for t in trials]
    clock.now += 8
    assert table.heartbeat(0, [ids[0]]).gone == [] and table.heartbeat(1, [ids[1]]).gone == []
    assert table.heartbeat(1, [ids[2]]).gone == [ids[2]]  # not its trial: keeps nothing alive
    clock.now += 8
    expired = table.expired()
    assert [e.trial_id for e in expired] == [ids[2]]
    assert expired[0].lost and "no heartbeat for 16.0 s (grace 10 s)" in expired[0].reason


def test_a_trial_past_its_timeout_expires_as_not_lost() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0, trial_timeout=5.0)
    clock.now += 6
    for i, trial in enumerate(trials):
        table.heartbeat(i % 2, [trial_id_of(trial)])
    expired = table.expired()
    assert len(expired) == 3 and not any(e.lost for e in expired)
    assert "ran longer than 5 s" in expired[0].reason


def test_a_closed_lease_refuses_calls_but_stays_until_released() -> None:
    clock = _Clock()
    table, trials = _table(clock, heartbeat_grace=10.0)
    trial_id = trial_id_of(trials[1])
    table.close(trial_id, "timeout: too slow")
    # Its end is being written: nothing may act on it, and the run is not over without it.
    with pytest.raises(UpdateFinishedTrialError, match=r"Trial 1 is no longer running.*too slow"):
        table.touch(trial_id)
    assert table.find(trial_id) is None and table.heartbeat(1, [trial_id]).gone == [trial_id]
    assert trial_id in table and len(table) == 3 and table.n_running == 2
    assert trial_id not in table.running_ids() and trial_id not in table.held_by(1)
    clock.now += 60
    assert trial_id not in [e.trial_id for e in table.expired()]

    table.release(trial_id)  # the storage has accepted its end
    assert trial_id not in table and len(table) == 2
    with pytest.raises(UpdateFinishedTrialError, match=r"Trial 1 is no longer running.*too slow"):
        table.touch(trial_id)
    with pytest.raises(UpdateFinishedTrialError, match=r"id 12345 .*not running in this"):
        table.touch(12345)


def test_a_lease_keeps_output_up_to_its_cap() -> None:
    table, trials = _table(_Clock(), heartbeat_grace=10.0)
    lease = table.touch(trial_id_of(trials[0]))
    assert lease.keep_output("a" * (MAX_OUTPUT_CHARS - 3)) == "a" * (MAX_OUTPUT_CHARS - 3)
    assert lease.keep_output("bcdef") == "bcd"
    assert lease.keep_output("more") == ""
    assert lease.output_chars == MAX_OUTPUT_CHARS and "".join(lease.output).endswith("abcd")


def test_leases_are_found_by_connection() -> None:
    table, trials = _table(_Clock(), heartbeat_grace=10.0)
    assert table.held_by(0) == [trial_id_of(trials[0]), trial_id_of(trials[2])]
    assert table.held_by(1) == [trial_id_of(trials[1])]
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
    table.touch(trial_id_of(trials[0])).busy += 1  # a suggestion waiting for the sampler
    clock.now += 60
    assert [e.trial_id for e in table.expired()] == [trial_id_of(t) for t in trials[1:]]


def test_only_the_holding_connection_may_act_on_a_trial() -> None:
    table, trials = _table(_Clock(), heartbeat_grace=10.0)
    trial_id = trial_id_of(trials[1])  # held by connection 1
    assert table.touch(trial_id, 1).number == 1
    with pytest.raises(PermissionError, match="Trial 1 is held by another worker's connection"):
        table.touch(trial_id, 0)
    assert table.touch(trial_id).number == 1  # the run itself may always


def test_parked_and_suspended_trials_go_only_to_a_worker_of_their_profile() -> None:
    clock = _Clock()
    study = optuna.create_study()
    big, small, lost = (study.ask() for _ in range(3))
    table = LeaseTable(heartbeat_grace=10.0, clock=clock)
    table.park(trial_id_of(big), big, "large")
    table.park(trial_id_of(small), small, "small")
    table.grant(trial_id_of(lost), lost, conn_id=7, worker={"host": "h"}, profile="large")
    table.suspend(trial_id_of(lost), {"reason": "worker lost"})
    clock.now += 60  # nobody holds them: waiting is not silence
    assert table.expired() == []

    assert table.take_suspended(1, "small") is None
    taken = table.take_parked(1, "small", {"host": "s"})
    assert taken is not None and taken.trial is small and taken.started == clock.now
    assert table.take_parked(2, "small", {"host": "s"}) is None
    resumed = table.take_suspended(2, "large")
    assert resumed is not None and resumed.trial is lost
    parked = table.take_parked(3, "large", {"host": "l"})
    assert parked is not None and parked.trial is big and parked.worker == {"host": "l"}
    assert table.parked_ids() == [] and table.suspended_ids() == []
