"""``RemoteStorage`` as users use it: studies, pickling, other processes, errors."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.exceptions import DuplicatedStudyError
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_spark import RemoteError
from optuna_spark import RemoteStorage
from optuna_spark.remote import StudyServer
from optuna_spark.wire import RemoteTraceback
from tests import _workers as w
from tests._helpers import BACKENDS
from tests._helpers import make_backend


def _remote(server: StudyServer, **kwargs: Any) -> RemoteStorage:
    return RemoteStorage(server.host, server.port, server.token, **kwargs)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_optimize_with_threads_through_remote_storage(
    make_server: Callable[..., StudyServer], tmp_path: Path, backend: str
) -> None:
    server = make_server(make_backend(backend, tmp_path))
    storage = _remote(server)
    study = optuna.create_study(
        study_name="remote", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.2) ** 2, n_trials=30, n_jobs=2)

    assert len(study.trials) == 30
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.best_value == min(t.value or 0.0 for t in study.trials)
    # The data lives in the served storage, and any other client sees it.
    served = optuna.load_study(study_name="remote", storage=server.storage)
    assert [t.params for t in served.trials] == [t.params for t in study.trials]
    other = optuna.load_study(study_name="remote", storage=_remote(server))
    assert other.best_trial.number == study.best_trial.number


def test_optunas_study_functions_work_over_remote_storage(
    remote_storage: RemoteStorage,
) -> None:
    study = optuna.create_study(study_name="a", storage=remote_storage, direction="maximize")
    study.set_user_attr("owner", "me")
    study.optimize(lambda t: t.suggest_int("n", 0, 10), n_trials=5)
    optuna.create_study(study_name="b", storage=remote_storage)

    assert optuna.get_all_study_names(remote_storage) == ["a", "b"]
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(remote_storage)}
    assert summaries["a"].n_trials == 5
    assert summaries["a"].best_trial is not None
    assert summaries["a"].best_trial.value == study.best_value
    assert summaries["a"].user_attrs == {"owner": "me"}
    frame = optuna.load_study(study_name="a", storage=remote_storage).trials_dataframe()
    assert list(frame["params_n"]) == [t.params["n"] for t in study.trials]

    local = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name="a", from_storage=remote_storage, to_storage=local)
    copied = optuna.load_study(study_name="a", storage=local)
    assert [t.params for t in copied.trials] == [t.params for t in study.trials]
    assert copied.user_attrs == {"owner": "me"}

    optuna.delete_study(study_name="b", storage=remote_storage)
    assert optuna.get_all_study_names(remote_storage) == ["a"]


def test_pickle_round_trip_reconnects_with_the_token(remote_storage: RemoteStorage) -> None:
    study = optuna.create_study(study_name="p", storage=remote_storage)
    study.enqueue_trial({"x": 1.0})
    remote_storage.get_all_studies()  # leaves an open connection in the pool

    restored = pickle.loads(pickle.dumps(remote_storage))

    assert isinstance(restored, RemoteStorage)
    assert restored is not remote_storage
    assert restored.endpoint == remote_storage.endpoint
    assert restored.endpoint.token == remote_storage.endpoint.token
    assert restored.get_study_id_from_name("p") == study._study_id
    assert len(restored.get_all_trials(study._study_id)) == 1
    # A pickled study round-trips too.
    study2 = pickle.loads(pickle.dumps(study))
    study2.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=2)
    assert [t.params["x"] for t in study.trials][:1] == [1.0]
    assert len(study.trials) == 2


@pytest.mark.timeout(60)
def test_a_spawned_process_uses_a_pickled_remote_storage(remote_storage: RemoteStorage) -> None:
    study = optuna.create_study(study_name="shared", storage=remote_storage)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=w.add_trial_from_process, args=(remote_storage, "shared", 4.5))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert [t.value for t in study.trials] == [4.5]


def test_repr_does_not_show_the_token(server: StudyServer) -> None:
    storage = _remote(server)
    assert server.token not in repr(storage)
    assert server.token not in repr(storage.endpoint)
    assert server.token not in repr(server.endpoint)


# ---------------------------------------------------------------------------------------------
# Remote errors are Optuna's own types, with the driver's traceback as the cause.


def _assert_remote_cause(exc: BaseException) -> None:
    cause = exc.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "Traceback (most recent call last)" in cause.tb
    assert "Traceback" in str(cause)


def test_unknown_ids_raise_key_error(server: StudyServer, remote_storage: RemoteStorage) -> None:
    with pytest.raises(KeyError) as local:
        server.storage.get_study_name_from_id(999)
    with pytest.raises(KeyError) as remote:
        remote_storage.get_study_name_from_id(999)
    assert str(remote.value) == str(local.value)
    _assert_remote_cause(remote.value)

    with pytest.raises(KeyError):
        remote_storage.get_trial(12345)
    with pytest.raises(KeyError):
        remote_storage.get_study_id_from_name("no such study")
    with pytest.raises(KeyError):
        optuna.load_study(study_name="no such study", storage=remote_storage)


def test_duplicated_study_error(remote_storage: RemoteStorage) -> None:
    optuna.create_study(study_name="dup", storage=remote_storage)
    with pytest.raises(DuplicatedStudyError) as info:
        remote_storage.create_new_study([StudyDirection.MINIMIZE], "dup")
    _assert_remote_cause(info.value)
    with pytest.raises(DuplicatedStudyError):
        optuna.create_study(study_name="dup", storage=remote_storage)
    # load_if_exists relies on the exact type.
    again = optuna.create_study(study_name="dup", storage=remote_storage, load_if_exists=True)
    assert again.study_name == "dup"


def test_update_finished_trial_error(remote_storage: RemoteStorage) -> None:
    study = optuna.create_study(storage=remote_storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError) as info:
        remote_storage.set_trial_user_attr(trial._trial_id, "k", 1)
    _assert_remote_cause(info.value)
    with pytest.raises(UpdateFinishedTrialError):
        remote_storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [2.0])


def test_value_and_runtime_errors(remote_storage: RemoteStorage) -> None:
    study_id = remote_storage.create_new_study([StudyDirection.MINIMIZE])
    with pytest.raises(ValueError) as info:
        remote_storage.get_best_trial(study_id)  # no complete trial yet
    _assert_remote_cause(info.value)

    multi = remote_storage.create_new_study([StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE])
    remote_storage.create_new_trial(multi, optuna.trial.create_trial(values=[1.0, 2.0]))
    with pytest.raises(RuntimeError):
        remote_storage.get_best_trial(multi)
    # The connection is still good after errors.
    assert remote_storage.get_study_directions(study_id) == [StudyDirection.MINIMIZE]


class _CustomError(Exception):
    pass


class _FailingStorage(optuna.storages.InMemoryStorage):
    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        raise _CustomError("the backend broke")


def test_error_types_known_here_come_back_as_themselves_others_as_remote_error(
    make_server: Callable[..., StudyServer],
) -> None:
    server = make_server(_FailingStorage())
    storage = _remote(server)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE])
    with pytest.raises(_CustomError, match="the backend broke") as known:
        storage.get_study_user_attrs(study_id)  # its module is imported here: same type
    assert "get_study_user_attrs" in str(known.value.__cause__)

    from optuna_spark.wire import messages as m
    from optuna_spark.wire._errors import rebuild_error

    elsewhere = m.ErrorInfo("some_module_not_here.BackendError", "broke", "tb", ["Exception"])
    error = rebuild_error(elsewhere)
    assert isinstance(error, RemoteError)
    assert error.remote_type == "some_module_not_here.BackendError"
    assert "broke" in str(error) and error.remote_traceback == "tb"


def test_values_travel_as_data(remote_storage: RemoteStorage) -> None:
    study_id = remote_storage.create_new_study([StudyDirection.MINIMIZE])
    remote_storage.set_study_user_attr(study_id, "np", np.float64(1.5))
    remote_storage.set_study_user_attr(study_id, "tuple", (1, "a"))
    remote_storage.set_study_user_attr(study_id, "nested", {"a": [1, {"b": None}]})
    assert remote_storage.get_study_user_attrs(study_id) == {
        "np": 1.5,
        "tuple": [1, "a"],
        "nested": {"a": [1, {"b": None}]},
    }
    with pytest.raises(TypeError, match="cannot be sent"):
        remote_storage.set_study_user_attr(study_id, "obj", object())
    # Nothing was sent: the connection is still in step.
    assert remote_storage.get_study_user_attrs(study_id)["np"] == 1.5


def test_calls_after_the_server_closed_fail_with_connection_error(
    make_server: Callable[..., StudyServer],
) -> None:
    server = make_server()
    storage = _remote(server, connect_timeout=2)
    storage.get_all_studies()
    address = f"{server.host}:{server.port}"
    server.close()
    with pytest.raises(ConnectionError, match=address):
        storage.get_all_studies()
    with pytest.raises(ConnectionError, match=address):
        storage.get_all_studies()


def test_an_interrupted_call_never_leaves_its_reply_for_the_next_one(
    remote_storage: RemoteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna_spark.wire import _frames as _protocol

    study_id = remote_storage.create_new_study([StudyDirection.MINIMIZE], "interrupted")
    real_recv = _protocol.recv_frame
    calls = {"n": 0}

    def interrupted_once(sock: Any, max_bytes: int, *args: Any) -> bytes:
        if threading.current_thread() is not threading.main_thread():
            return real_recv(sock, max_bytes, *args)  # the server's threads read as usual
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # Ctrl-C between sending a request and reading its reply
        return real_recv(sock, max_bytes, *args)

    monkeypatch.setattr(_protocol, "recv_frame", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        remote_storage.get_n_trials(study_id)
    monkeypatch.setattr(_protocol, "recv_frame", real_recv)
    assert remote_storage.get_study_name_from_id(study_id) == "interrupted"
    assert remote_storage.get_n_trials(study_id) == 0
