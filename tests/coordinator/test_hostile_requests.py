"""Hostile requests from an authenticated client: each is refused with an error, and a
refused request changes nothing (the storage is compared before and after)."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import msgspec
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import distribution_to_json

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.wire import messages as m
from optuna_spark.wire._frames import client_handshake
from optuna_spark.wire._frames import token_bytes
from tests._calls import WORKER

pytestmark = pytest.mark.timeout(60)


def _snapshot(storage: optuna.storages.BaseStorage) -> Any:
    studies = sorted(storage.get_all_studies(), key=lambda s: s._study_id)
    return [
        (
            s._study_id,
            s.study_name,
            s.user_attrs,
            {k: v for k, v in s.system_attrs.items() if not k.startswith("optuna_spark:driver")},
            [
                (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs)
                for t in storage.get_all_trials(s._study_id)
            ],
        )
        for s in studies
    ]


def _call(sock: socket.socket, raw: Any) -> list[Any]:
    body = msgspec.msgpack.encode(raw)
    sock.sendall(struct.pack(">I", len(body)) + body)
    (size,) = struct.unpack(">I", _recv(sock, 4))
    return list(msgspec.msgpack.decode(_recv(sock, size)))


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "the server closed the connection"
        buf += chunk
    return buf


_TWO_CHOICES = distribution_to_json(CategoricalDistribution(["a", "b"]))


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_refused_requests_change_nothing() -> None:
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        study = optuna.create_study(storage=server.storage, study_name="s")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        run = StudyRun(study, n_trials=5)
        run.start()
        server.add_run(run)
        running = run.ask(99, WORKER)
        assert running is not None
        rid, tid = run.run_id, running.trial_id
        before = _snapshot(server.storage)

        hostile: list[Any] = [
            ["delete_study", True],  # a bool is not a study id
            ["delete_study", 2**63],  # no such study (the storage's KeyError)
            ["delete_study", -1],
            ["set_trial_state_values", tid, 99, None],  # no such state
            ["set_trial_state_values", 0, 1, None],  # a finished trial cannot change
            ["set_trial_param", tid, "x", "0.5", "{}"],
            ["set_trial_user_attr", "1", "k", "v"],
            ["create_new_study", [7], "bad direction"],
            ["create_new_trial", 0, ["not", "a", "trial"]],
            ["run.ask", rid, "not a worker"],
            ["run.ask", rid, {"host": "h", "pid": "1"}],
            ["run.ask", rid, {"host": "h", "pid": 1, "evil": True}],
            ["run.ask", "no such run", {"host": "h", "pid": 1}],
            ["run.tell_values", rid, tid, "1.0"],
            ["run.tell_values", rid, tid, [1.0], 5],
            ["run.tell_failed", rid, tid, ["ValueError"], False],
            ["run.tell_failed", rid, tid, ["ValueError", "m", "tb", []], "no"],
            ["run.tell_values", rid, 123456, [1.0]],  # not a running trial
            ["run.tell_values", "no such run", tid, [1.0]],
            ["run.report", rid, tid, "high", 1],
            ["run.report", rid, tid, 1.0, True],
            ["run.suggest_float", rid, tid, "y", 1.0, 0.0, None, False],  # low > high
            ["run.suggest_int", rid, tid, "y", 0.5, 3, 1, False],
            ["run.suggest_categorical", rid, tid, "c", [[1, 2]]],
            ["run.set_user_attr", rid, tid, 5, "v"],
            ["run.heartbeat", rid, "all"],
            ["run.heartbeat", rid, list(range(100_000))],  # a walk under the run's lock
            # Valid requests, but the trial is another connection's.
            ["run.tell_values", rid, tid, [1.0]],
            ["run.tell_pruned", rid, tid, ""],
            ["run.report", rid, tid, 1.0, 1],
            ["run.should_prune", rid, tid],
            ["run.set_user_attr", rid, tid, "k", "v"],
            ["run.suggest_float", rid, tid, "y", 0.0, 1.0, None, False],
            # Writes Optuna itself would never make: each could leave the study unreadable.
            ["set_trial_param", tid, "c", 7.0, _TWO_CHOICES],  # no 8th choice
            ["set_trial_param", tid, "c", -1.0, _TWO_CHOICES],
            ["set_trial_state_values", tid, 1, None],  # COMPLETE without values
            ["set_trial_state_values", tid, 1, [float("nan")]],
            # Values nested deeper than any storage or copy should be asked to handle.
            ["set_study_user_attr", 0, "deep", _nested(600)],
            ["set_trial_user_attr", tid, "deep", _nested(40)],
            ["run.stop_study", 1],
            ["get_all_trials", 0, None],  # not a request of this protocol
            ["ping", "extra"],
        ]
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            client_handshake(sock, token_bytes(server.token), "test")
            for raw in hostile:
                ok, error = _call(sock, raw)
                assert ok is False, raw
                assert error[1], raw  # the reason is said
            assert _call(sock, ["ping"]) == [True, "pong"]  # the connection goes on

        assert _snapshot(server.storage) == before
        assert run.error is None and run.n_running == 1 and not run.done
        run.stop()


def test_a_connection_runs_one_trial_at_a_time_and_beats_only_for_its_own() -> None:
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        study = optuna.create_study(storage=server.storage)
        run = StudyRun(study, n_trials=100)
        server.add_run(run)
        other = run.ask(99, WORKER)  # another connection's trial
        assert other is not None
        worker = {"host": "h", "pid": 1}
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            client_handshake(sock, token_bytes(server.token), "test")
            ok, mine = _call(sock, ["run.ask", run.run_id, worker])
            assert ok and mine is not None
            ok, error = _call(sock, ["run.ask", run.run_id, worker])  # before telling
            assert not ok and "still runs the trial" in error[1]
            # A stranger's heartbeat keeps nothing alive: the trial is reported not its own.
            ok, reply = _call(sock, ["run.heartbeat", run.run_id, [other.trial_id, mine[0]]])
            assert ok and reply == [[other.trial_id], []]  # gone, asked to save
        assert run.n_started == 2  # the refused ask used up nothing
        run.stop()


@pytest.mark.parametrize("kind", ["inmemory", "sqlite"])
def test_a_trial_template_that_breaks_optunas_invariants_is_refused(
    kind: str, tmp_path: Any
) -> None:
    from optuna_spark import RemoteStorage

    backend = (
        optuna.storages.InMemoryStorage()
        if kind == "inmemory"
        else optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    )
    with StudyServer(backend) as server:
        storage = RemoteStorage.from_endpoint(server.endpoint)
        study = optuna.create_study(storage=storage)
        bad = optuna.trial.create_trial(value=1.0)
        bad.values = None  # COMPLETE without values: TPE would crash on it
        with pytest.raises(ValueError, match="A COMPLETE trial needs its values"):
            storage.create_new_trial(study._study_id, bad)
        # Nothing was left behind, and the study reads as before.
        assert study.trials == []
        assert optuna.load_study(study_name=study.study_name, storage=storage).trials == []
        storage.close()


def test_a_running_trial_is_written_only_by_its_holder_and_inside_its_distributions() -> None:
    # With sampling="workers" a worker writes its trial's parameters through the storage
    # routes: a stranger may not write to its trial at all, and the holder only values its
    # sampler could have drawn (or that enqueue_trial fixed, which Optuna keeps out of range).
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        study = optuna.create_study(storage=server.storage)
        study.enqueue_trial({"x": 5.0})
        run = StudyRun(study, n_trials=5, sampling="workers")
        server.add_run(run)
        unit = distribution_to_json(FloatDistribution(0, 1))
        worker = {"host": "h", "pid": 1}
        with (
            socket.create_connection((server.host, server.port), timeout=10) as holder,
            socket.create_connection((server.host, server.port), timeout=10) as other,
        ):
            for sock in (holder, other):
                client_handshake(sock, token_bytes(server.token), "test")
            ok, enqueued = _call(holder, ["run.ask", run.run_id, worker])
            ok2, sampled = _call(other, ["run.ask", run.run_id, worker])
            assert ok and ok2
            tid = sampled[0]
            before = _snapshot(server.storage)
            for raw in [
                ["set_trial_param", tid, "x", 0.5, unit],
                ["set_trial_user_attr", tid, "k", "v"],
                ["set_trial_system_attr", tid, "k", "v"],
                ["set_trial_intermediate_value", tid, 0, 1.0],
                ["set_trial_state_values", tid, 1, [1.0]],
            ]:
                ok, error = _call(holder, raw)  # the other connection's trial
                assert not ok and "only the connection that holds it" in error[1], raw
            ok, error = _call(other, ["set_trial_param", tid, "x", 5.0, unit])
            assert not ok and "outside its distribution" in error[1]
            assert _snapshot(server.storage) == before

            assert _call(other, ["set_trial_param", tid, "x", 0.5, unit]) == [True, None]
            assert _call(holder, ["set_trial_param", enqueued[0], "x", 5.0, unit]) == [True, None]
        params = {t.number: t.params for t in study.get_trials(deepcopy=False)}
        assert params == {0: {"x": 5.0}, 1: {"x": 0.5}}
        run.stop()


class _SlowEnds(optuna.storages.InMemoryStorage):
    """Writing a trial's end waits until ``written`` is set; ``ending`` is set meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.ending = threading.Event()
        self.written = threading.Event()

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        if state.is_finished():
            self.ending.set()
            assert self.written.wait(30), "the test never let the end be written"
        return super().set_trial_state_values(trial_id, state, values)


def test_a_trial_whose_end_is_being_written_is_written_by_nobody_else() -> None:
    storage = _SlowEnds()
    with StudyServer(storage) as server:
        study = optuna.create_study(storage=storage)
        run = StudyRun(study, n_trials=1)
        server.add_run(run)
        held = run.ask(99, WORKER)  # connection 99 holds it
        assert held is not None
        telling = threading.Thread(
            target=run.tell, args=(99, m.TellValues(run.run_id, held.trial_id, [1.0]))
        )
        telling.start()
        try:
            assert storage.ending.wait(30)  # its end is being written
            with socket.create_connection((server.host, server.port), timeout=10) as sock:
                client_handshake(sock, token_bytes(server.token), "test")
                ok, error = _call(sock, ["set_trial_user_attr", held.trial_id, "k", "v"])
            assert not ok and "only the connection that holds it" in error[1]
        finally:
            storage.written.set()
            telling.join(30)
        assert run.wait(30)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs == {}
