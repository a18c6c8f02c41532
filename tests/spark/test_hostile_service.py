"""A real ``SparkExecutor`` study while its service port is flooded with slow senders."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import SparkExecutor

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def objective(trial: optuna.trial.BaseTrial) -> float:
    return trial.suggest_float("x", 0, 1)


def test_64_slow_senders_at_the_service_port_do_not_stop_the_study(spark: Any) -> None:
    port = _free_port()
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def flood() -> None:
        # Keep 64 connections open at the service port from the moment it listens, each
        # sending one byte a second, until the study is over (bounded: 5 minutes).
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            while len(sockets) < 64:
                try:
                    sockets.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                except OSError:
                    break  # not listening yet
            if len(sockets) < 64:
                stop.wait(0.01)
                continue
            for sock in list(sockets):
                try:
                    sock.send(b"O")
                except OSError:
                    sockets.remove(sock)  # dropped at its handshake deadline: open another
                    sock.close()
            stop.wait(1.0)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    study = optuna.create_study()
    try:
        SparkExecutor(spark, n_workers=2, service_port=port).optimize(
            study, objective, n_trials=20
        )
    finally:
        stop.set()
        flooder.join(10)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
    assert len(study.trials) == 20
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
