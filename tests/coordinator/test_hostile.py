"""The service under hostile and careless traffic: floods, slow senders, idle connections.

Every test talks to 127.0.0.1 only, and every loop is bounded in count and time. What a user
relies on: while any of this goes on, a legitimate client still gets in (and is served), and
nothing is decoded before a connection has proved the token.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import trustme

from optuna_spark import RemoteStorage
from optuna_spark.remote import StudyServer
from optuna_spark.wire import PROTOCOL_VERSION
from optuna_spark.wire import Connection
from optuna_spark.wire import Endpoint
from optuna_spark.wire import messages as m
from optuna_spark.wire._frames import MAGIC
from tests._helpers import server_threads
from tests._helpers import wait_until

pytestmark = pytest.mark.timeout(120)


class _Dripper:
    """Sockets that send one byte per interval and never finish the handshake."""

    def __init__(self, connect: Callable[[], socket.socket], n: int, interval: float) -> None:
        self.sockets = [connect() for _ in range(n)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, args=(interval,), daemon=True)
        self._thread.start()

    def _drip(self, interval: float) -> None:
        payload = iter((MAGIC + bytes([PROTOCOL_VERSION])) + b"\0" * 600)  # bounded
        while not self._stop.wait(interval):
            byte = next(payload, None)
            if byte is None:
                return
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


def _raw(server: StudyServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def _served(endpoint: Endpoint) -> float:
    """Seconds for a fresh client to connect, authenticate and get an answer."""
    t0 = time.monotonic()
    conn = Connection(endpoint)
    try:
        assert conn.call(m.Ping()) == "pong"
    finally:
        conn.close()
    return time.monotonic() - t0


@pytest.fixture
def server() -> Iterator[StudyServer]:
    with StudyServer(optuna.storages.InMemoryStorage(), handshake_timeout=5.0) as s:
        yield s


@pytest.mark.parametrize("n", [64, 500])
def test_slow_senders_cannot_keep_a_client_out(server: StudyServer, n: int) -> None:
    drip = _Dripper(lambda: _raw(server), n, interval=1.0)
    try:
        for _ in range(3):
            took = _served(server.endpoint)
            assert took < server._handshake_timeout, f"served after {took:.2f} s"
        # Each slow sender is dropped at its handshake deadline, whatever it keeps sending.
        assert wait_until(lambda: all(_closed(s) for s in drip.sockets[:10]), timeout=20)
    finally:
        drip.close()
    assert wait_until(
        lambda: not any(t.name.startswith("optuna-spark-conn-") for t in server_threads())
    )


def test_two_thousand_idle_sockets_cannot_keep_a_client_out(server: StudyServer) -> None:
    idle = [_raw(server) for _ in range(2000)]
    try:
        for _ in range(3):
            _served(server.endpoint)
        storage = RemoteStorage.from_endpoint(server.endpoint)
        study = optuna.create_study(storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
        assert len(study.trials) == 5
        storage.close()
    finally:
        for sock in idle:
            sock.close()


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(64) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_tls_slow_senders_after_the_tls_handshake_cannot_keep_a_client_out(
    ca: trustme.CA, tmp_path: Path
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ctx = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    with StudyServer(
        optuna.storages.InMemoryStorage(),
        tls_certfile=str(certfile),
        tls_keyfile=str(keyfile),
        handshake_timeout=5.0,
    ) as server:

        def tls_raw() -> socket.socket:
            return ctx.wrap_socket(_raw(server), server_hostname="127.0.0.1")

        drip = _Dripper(tls_raw, 64, interval=1.0)  # TLS done, then one byte a second
        try:
            for _ in range(3):
                took = _served(server.endpoint)
                # Bounded as for plaintext: a client never waits out the slow senders.
                assert took < server._handshake_timeout, f"served after {took:.2f} s"
            assert wait_until(lambda: all(_closed(s) for s in drip.sockets[:10]), timeout=20)
        finally:
            drip.close()


def test_an_idle_authenticated_connection_is_closed_and_storage_reconnects() -> None:
    with StudyServer(optuna.storages.InMemoryStorage(), idle_timeout=0.3) as server:
        storage = RemoteStorage.from_endpoint(server.endpoint)
        assert storage.get_all_studies() == []

        def conn_threads() -> list[threading.Thread]:
            return [t for t in server_threads() if t.name.startswith("optuna-spark-conn-")]

        assert wait_until(lambda: not conn_threads(), timeout=10)  # closed by the server
        assert storage.get_all_studies() == []  # the pooled connection is replaced
        storage.close()


def test_a_client_retries_a_handshake_the_server_dropped(
    server: StudyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection dropped during its handshake (the server evicting it in a flood) is
    retried with backoff until the connect deadline; a refused one is not (nobody listens)."""
    from optuna_spark.wire import _client
    from optuna_spark.wire import _frames

    real = _client._connect_once
    attempts: list[int] = []

    def dropped_twice(*args: object) -> socket.socket:
        attempts.append(1)
        if len(attempts) <= 2:
            raise _frames.PeerClosedError("the connection was closed by the peer")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_client, "_connect_once", dropped_twice)
    conn = Connection(server.endpoint)
    assert conn.call(m.Ping()) == "pong" and len(attempts) == 3
    conn.close()


def test_a_connect_storm_of_300_clients_all_join(server: StudyServer) -> None:
    n = 300
    barrier = threading.Barrier(n)
    results: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        barrier.wait(30)
        try:
            conn = Connection(server.endpoint)
            outcome = conn.call(m.Ping())
            conn.close()
        except Exception as e:
            outcome = f"{type(e).__name__}: {e}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("pong") == n, [r for r in results if r != "pong"][:3]
