"""``RemoteStorage`` reads only what changed: finished trials are fetched once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import RemoteStorage
from optuna_spark.remote import StudyServer
from optuna_spark.wire import messages as m


class _Counting:
    """Counts the trials the server sends for ``GetTrials``."""

    def __init__(self, server: StudyServer) -> None:
        self.sent: list[int] = []
        route = server._routes[m.GetTrials]

        def counting(request: m.GetTrials, conn_id: int) -> Any:
            trials = route(request, conn_id)  # encoded already, in the server's read lane
            self.sent.append(len(msgspec.msgpack.decode(trials)))
            return trials

        server.register(m.GetTrials, counting)


@pytest.fixture
def served() -> Iterator[tuple[StudyServer, _Counting, RemoteStorage]]:
    server = StudyServer(optuna.storages.InMemoryStorage())
    counting = _Counting(server)
    with server:
        storage = RemoteStorage(server.host, server.port, server.token)
        yield server, counting, storage
        storage.close()


def test_finished_trials_cross_the_wire_once(
    served: tuple[StudyServer, _Counting, RemoteStorage],
) -> None:
    server, counting, storage = served
    local = optuna.create_study(storage=server.storage, study_name="s")
    local.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=30)
    remote = optuna.load_study(study_name="s", storage=storage)

    assert len(remote.trials) == 30
    assert len(remote.trials) == 30
    assert counting.sent == [30, 0]

    running = local.ask()
    assert [t.state for t in remote.trials][-1] == TrialState.RUNNING
    running.report(0.5, 1)
    assert remote.trials[-1].intermediate_values == {1: 0.5}  # a running trial is re-read
    local.tell(running, 0.25)
    assert remote.trials[-1].value == 0.25
    assert remote.trials[-1].value == 0.25
    assert counting.sent[2:] == [1, 1, 1, 0]


def test_reads_match_the_storage_for_every_filter_and_copy(
    served: tuple[StudyServer, _Counting, RemoteStorage],
) -> None:
    server, _, storage = served
    local = optuna.create_study(storage=server.storage, study_name="s")
    for i in range(6):
        trial = local.ask()
        trial.suggest_int("i", 0, 10)
        if i % 3 == 0:
            local.tell(trial, float(i))
        elif i % 3 == 1:
            local.tell(trial, state=TrialState.PRUNED)
    local.enqueue_trial({"i": 3})
    study_id = storage.get_study_id_from_name("s")
    expected_all = server.storage.get_all_trials(study_id)
    for states in (None, (TrialState.COMPLETE,), (TrialState.RUNNING, TrialState.WAITING), ()):
        expected = server.storage.get_all_trials(study_id, states=states)
        assert storage.get_all_trials(study_id, states=states) == expected
        assert storage.get_n_trials(study_id, states) == len(expected)

    copy = storage.get_all_trials(study_id)
    copy[0].user_attrs["mutated"] = True  # a deep copy: the cache keeps its own
    copy[0].system_attrs["mutated"] = True
    copy[0].params["i"] = -1
    copy[0].intermediate_values[9] = 9.0
    copy.clear()
    again = storage.get_all_trials(study_id)
    assert again == expected_all
    assert "mutated" not in again[0].user_attrs and "mutated" not in again[0].system_attrs


def test_deleting_a_study_forgets_its_trials(
    served: tuple[StudyServer, _Counting, RemoteStorage],
) -> None:
    storage = served[2]
    study = optuna.create_study(storage=storage, study_name="gone")
    study.optimize(lambda t: 1.0, n_trials=3)
    study_id = storage.get_study_id_from_name("gone")
    assert len(storage.get_all_trials(study_id)) == 3
    storage.delete_study(study_id)
    with pytest.raises(KeyError):
        storage.get_all_trials(study_id)


def test_a_study_deleted_by_another_client_is_forgotten(tmp_path: Any) -> None:
    """SQLite gives a new study the id of a deleted one: its trials must not be the old ones."""
    with StudyServer(f"sqlite:///{tmp_path / 'db.sqlite'}") as server:
        a = RemoteStorage(server.host, server.port, server.token)
        b = RemoteStorage(server.host, server.port, server.token)
        optuna.create_study(storage=a, study_name="old").optimize(lambda t: 1.0, n_trials=3)
        old_id = a.get_study_id_from_name("old")
        assert len(a.get_all_trials(old_id)) == 3
        b.delete_study(old_id)
        with pytest.raises(KeyError):
            a.get_all_trials(old_id)
        optuna.create_study(storage=b, study_name="new").optimize(lambda t: 2.0, n_trials=1)
        new_id = b.get_study_id_from_name("new")
        assert [t.value for t in a.get_all_trials(new_id)] == [2.0]
        a.close()
        b.close()
