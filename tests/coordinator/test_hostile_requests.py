"""Hostile requests from an authenticated client: each is refused with an error, and a
refused request changes nothing (the storage is compared before and after)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import msgspec
import optuna
import pytest

from optuna_spark import StudyRun
from optuna_spark import StudyServer
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


def test_refused_requests_change_nothing() -> None:
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        study = optuna.create_study(storage=server.storage, study_name="s")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        run = StudyRun(study, n_trials=5)
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
