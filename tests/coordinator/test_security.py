"""The wire's guarantees: authentication first, bad input never stops the server, TLS.

Each hostile client is followed by a good one, which must still be served.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import optuna
import pytest
import trustme

from optuna_spark import AuthenticationError
from optuna_spark import ProtocolError
from optuna_spark import RemoteStorage
from optuna_spark.remote import Endpoint
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker
from optuna_spark.wire import PROTOCOL_VERSION
from optuna_spark.wire import Connection
from optuna_spark.wire import messages as m
from optuna_spark.wire._frames import MAGIC
from optuna_spark.wire._frames import client_handshake
from optuna_spark.wire._frames import token_bytes
from tests._helpers import server_threads
from tests._helpers import wait_until

HELLO_BYTES = len(MAGIC) + 1 + 32


def _assert_serving(server: StudyServer) -> None:
    """A good client still gets answers."""
    conn = Connection(server.endpoint)
    try:
        assert conn.call(m.Ping()) == "pong"
    finally:
        conn.close()


def _raw(server: StudyServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    return sock


def _authenticated_raw(server: StudyServer) -> socket.socket:
    sock = _raw(server)
    client_handshake(sock, token_bytes(server.token), f"{server.host}:{server.port}")
    return sock


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _read_reply(sock: socket.socket) -> Any:
    header = _recv_exact(sock, 4)
    (size,) = struct.unpack(">I", header)
    return msgspec.msgpack.decode(_recv_exact(sock, size))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# ---------------------------------------------------------------------------------------------
# Authentication.


def test_wrong_token_is_rejected_and_the_server_goes_on(server: StudyServer) -> None:
    bad = Endpoint(server.host, server.port, "not-the-token")
    with pytest.raises(AuthenticationError, match="Authentication failed"):
        Connection(bad)
    with pytest.raises(AuthenticationError, match="Authentication failed"):
        RemoteStorage(server.host, server.port, "not-the-token").get_all_studies()
    _assert_serving(server)


def test_a_token_is_required_and_generated_tokens_are_strong(
    make_server: Callable[..., StudyServer],
) -> None:
    a, b = make_server(), make_server()
    assert a.token != b.token
    assert len(a.token) >= 32
    with pytest.raises(ValueError, match="token"):
        Connection(Endpoint(a.host, a.port, ""))
    chosen = make_server(token="chosen secret")
    assert chosen.token == "chosen secret"
    _assert_serving(chosen)


def test_a_client_checks_that_the_server_knows_the_token(
    make_server: Callable[..., StudyServer],
) -> None:
    """An impostor that accepts any proof cannot produce the server's proof."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def impostor() -> None:
        conn, _ = listener.accept()
        with conn:
            _recv_exact(conn, len(MAGIC) + 1)  # the client's preamble
            conn.sendall(MAGIC + bytes([PROTOCOL_VERSION]) + os.urandom(32))
            _recv_exact(conn, 64)
            conn.sendall(bytes([0]) + os.urandom(32))  # "OK" and a made-up proof
            time.sleep(0.2)

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    try:
        with pytest.raises(AuthenticationError, match="does not know the token"):
            Connection(Endpoint("127.0.0.1", port, "secret", connect_timeout=5))
    finally:
        thread.join(5)
        listener.close()


def test_a_server_of_another_protocol_version_is_refused_naming_both_versions() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    other = PROTOCOL_VERSION + 1

    def old_server() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(MAGIC + bytes([other]) + os.urandom(32))
            _closed_by_peer(conn)

    thread = threading.Thread(target=old_server, daemon=True)
    thread.start()
    try:
        with pytest.raises(ProtocolError) as info:
            Connection(Endpoint("127.0.0.1", port, "secret", connect_timeout=5))
        message = str(info.value)
        assert f"version {other}" in message and f"version {PROTOCOL_VERSION}" in message
        assert "same optuna-spark version" in message
    finally:
        thread.join(5)
        listener.close()


def _greeted(server: StudyServer) -> socket.socket:
    """A raw connection that has sent the client's preamble."""
    sock = _raw(server)
    sock.sendall(MAGIC + bytes([PROTOCOL_VERSION]))
    return sock


def test_garbage_before_authentication(server: StudyServer) -> None:
    # Proof-sized garbage: rejected with the "authentication failed" status, then closed.
    with _greeted(server) as sock:
        assert _recv_exact(sock, HELLO_BYTES).startswith(MAGIC)
        sock.sendall(os.urandom(64))
        assert _recv_exact(sock, 1) == b"\x01"
        assert _closed_by_peer(sock)
    # Something else entirely (an HTTP request): closed without a word.
    with _raw(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 100)
        assert _closed_by_peer(sock)
    # A msgpack request sent without authenticating is never decoded.
    with _greeted(server) as sock:
        _recv_exact(sock, HELLO_BYTES)
        sock.sendall(_frame(msgspec.msgpack.encode(["get_all_studies"])) + b"\0" * 64)
        assert _recv_exact(sock, 1) == b"\x01"
        assert _closed_by_peer(sock)
    _assert_serving(server)


@pytest.mark.timeout(30)
def test_silent_clients_do_not_block_others_and_are_dropped(
    make_server: Callable[..., StudyServer],
) -> None:
    server = make_server(handshake_timeout=0.5)
    silent = [_raw(server) for _ in range(5)]
    try:
        _assert_serving(server)  # while they hold their connections
        for sock in silent:
            assert _closed_by_peer(sock, timeout=5), "a silent client was never dropped"
    finally:
        for sock in silent:
            sock.close()
    _assert_serving(server)


# ---------------------------------------------------------------------------------------------
# Bad input after authentication.


def test_malformed_messages_get_an_error_and_the_connection_goes_on(
    server: StudyServer,
) -> None:
    with _authenticated_raw(server) as sock:
        for body in (
            b"\xc1",  # a byte msgpack never uses
            b"\x92\xa4ping",  # truncated array
            msgspec.msgpack.encode({"method": "ping"}),  # wrong shape
            msgspec.msgpack.encode([1]),  # no request is named 1
            msgspec.msgpack.encode(["no_such_method"]),
            msgspec.msgpack.encode(["get_trial"]),  # a field is missing
            msgspec.msgpack.encode(["get_trial", "not an int"]),
            msgspec.msgpack.encode(["get_trial", 1, 2]),  # one field too many
            msgspec.msgpack.encode(["delete_study", True]),  # a bool is not an id
            msgspec.msgpack.encode(["get_n_trials", 0, [99]]),  # no such trial state
        ):
            sock.sendall(_frame(body))
            ok, error = _read_reply(sock)
            assert ok is False
            assert error[0] == "optuna_spark.exceptions.ProtocolError", body
            assert error[1], body  # the reason is said
        # A well-formed request the storage refuses is the storage's error, as in-process.
        sock.sendall(_frame(msgspec.msgpack.encode(["get_study_name_from_id", 12345])))
        ok, error = _read_reply(sock)
        assert ok is False and error[0] == "KeyError"
        # The same connection still works.
        sock.sendall(_frame(msgspec.msgpack.encode(["ping"])))
        assert _read_reply(sock) == [True, "pong"]
    _assert_serving(server)


def test_garbage_after_authentication_is_refused_and_the_server_goes_on(
    server: StudyServer,
) -> None:
    with _authenticated_raw(server) as sock:
        sock.sendall(b"\xff" * 64)  # a frame header announcing ~4 GiB
        ok, error = _read_reply(sock)
        assert ok is False
        assert error[0] == "optuna_spark.exceptions.MessageTooLargeError"
        assert "exceeds the limit" in error[1]
        assert _closed_by_peer(sock)
    _assert_serving(server)


def test_oversized_requests_are_refused_and_the_client_recovers(
    make_server: Callable[..., StudyServer],
) -> None:
    server = make_server(max_request_bytes=1024)
    storage = RemoteStorage(server.host, server.port, server.token)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE])

    with pytest.raises(ProtocolError, match="exceeds the server's limit of 1024 bytes"):
        storage.set_study_user_attr(study_id, "big", "x" * 5000)

    assert storage.get_study_user_attrs(study_id) == {}  # the next call just works
    storage.set_study_user_attr(study_id, "small", "x" * 100)
    assert storage.get_study_user_attrs(study_id) == {"small": "x" * 100}
    _assert_serving(server)


def test_a_closed_port_fails_fast_naming_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()  # nobody listens: no retry until the (long) connect timeout
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        Connection(Endpoint("127.0.0.1", port, "token", connect_timeout=30.0))
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        RemoteStorage("127.0.0.1", port, "token", connect_timeout=30.0).get_all_studies()
    assert time.monotonic() - t0 < 10


@pytest.mark.timeout(30)
def test_a_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # listens, never accepts nor answers
    port = listener.getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
            Connection(Endpoint("127.0.0.1", port, "token", connect_timeout=0.5))
        assert time.monotonic() - t0 < 3
    finally:
        listener.close()


# ---------------------------------------------------------------------------------------------
# TLS.


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, str]]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    yield str(certfile), str(keyfile)


@pytest.fixture
def tls_server(make_server: Callable[..., StudyServer], tls_files: tuple[str, str]) -> StudyServer:
    return make_server(tls_certfile=tls_files[0], tls_keyfile=tls_files[1], handshake_timeout=1.0)


def _ca_pem(ca: trustme.CA) -> str:
    return ca.cert_pem.bytes().decode()


@pytest.mark.timeout(30)
def test_tls_storage_with_a_trusted_ca(tls_server: StudyServer, ca: trustme.CA) -> None:
    storage = RemoteStorage(
        tls_server.host, tls_server.port, tls_server.token, tls_cadata=_ca_pem(ca)
    )
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5, n_jobs=2)
    assert len(study.trials) == 5
    conn = Connection(storage.endpoint)
    assert isinstance(conn._sock, ssl.SSLSocket)
    conn.close()


@pytest.mark.timeout(30)
def test_tls_workers_use_the_servers_endpoint(tls_server: StudyServer) -> None:
    """``server.endpoint`` pins the server's certificate, even when a CA issued it."""
    study = optuna.create_study(storage=tls_server.storage)
    run = StudyRun(study, n_trials=6)
    run.start()
    tls_server.add_run(run)
    spec = WorkerSpec(tls_server.endpoint, run.run_id)
    assert spec.endpoint.uses_tls
    threads = [
        threading.Thread(target=run_worker, args=(spec, lambda t: t.suggest_float("x", 0, 1)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    assert run.wait(20)
    for t in threads:
        t.join(10)
    assert len(study.trials) == 6
    assert run.error is None


@pytest.mark.timeout(30)
def test_tls_checks_the_certificate_and_the_host_name(
    tls_server: StudyServer, ca: trustme.CA
) -> None:
    host, port, token = tls_server.host, tls_server.port, tls_server.token
    with pytest.raises(ConnectionError, match="certificate verify failed"):
        Connection(Endpoint(host, port, token, tls_cadata=_ca_pem(trustme.CA())))
    with pytest.raises(ConnectionError, match="certificate verify failed"):
        Connection(
            Endpoint(host, port, token, tls_cadata=_ca_pem(ca), tls_server_hostname="example.org")
        )
    conn = Connection(
        Endpoint(host, port, token, tls_cadata=_ca_pem(ca), tls_server_hostname="localhost")
    )
    assert conn.call(m.Ping()) == "pong"
    conn.close()


@pytest.mark.timeout(30)
def test_plain_and_tls_clients_cannot_talk_to_the_other_kind(
    tls_server: StudyServer,
    make_server: Callable[..., StudyServer],
    ca: trustme.CA,
) -> None:
    """Each side says which one expects TLS, at once: not after the connect timeout (30 s)."""
    host, port, token = tls_server.host, tls_server.port, tls_server.token
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=f"{host}:{port} uses TLS and this client"):
        Connection(Endpoint(host, port, token, connect_timeout=30.0))
    assert time.monotonic() - t0 < 10

    plain = make_server()
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=f"{plain.host}:{plain.port}") as info:
        Connection(
            Endpoint(
                plain.host, plain.port, plain.token, tls_cadata=_ca_pem(ca), connect_timeout=30
            )
        )
    assert time.monotonic() - t0 < 10
    assert "This client uses TLS; if the server does not" in str(info.value)
    _assert_serving(plain)
    conn = Connection(Endpoint(host, port, token, tls_cadata=_ca_pem(ca)))
    assert conn.call(m.Ping()) == "pong"
    conn.close()


# ---------------------------------------------------------------------------------------------
# Closing.


@pytest.mark.timeout(30)
def test_close_leaves_no_thread_behind(make_server: Callable[..., StudyServer]) -> None:
    before = set(server_threads())
    server = make_server()
    storage = RemoteStorage(server.host, server.port, server.token)
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4, n_jobs=2)
    idle_authenticated = _authenticated_raw(server)
    half_open = _raw(server)  # never authenticates
    run = StudyRun(optuna.create_study(storage=server.storage), n_trials=100)
    run.start()
    server.add_run(run)
    assert wait_until(lambda: len(set(server_threads()) - before) >= 4)

    server.close()
    server.close()  # closing twice is harmless

    assert set(server_threads()) - before == set()
    assert _closed_by_peer(idle_authenticated)
    assert _closed_by_peer(half_open)
    with pytest.raises(ConnectionError):
        storage.get_all_studies()
    idle_authenticated.close()
    half_open.close()


def test_context_manager_starts_and_closes(make_server: Callable[..., StudyServer]) -> None:
    before = set(server_threads())
    with StudyServer(optuna.storages.InMemoryStorage()) as server:
        assert server.port > 0
        _assert_serving(server)
    assert set(server_threads()) - before == set()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


def test_unknown_error_types_come_back_as_their_nearest_known_base() -> None:
    from optuna_spark.wire import _errors as p

    class BadData(ValueError):
        pass

    try:
        raise BadData("column 'x' is empty")
    except BadData as e:
        wire = p.encode_error(e)
    rebuilt = p.rebuild_error(wire)
    assert type(rebuilt) is ValueError
    assert "BadData: column 'x' is empty" in str(rebuilt)
    assert "raise BadData" in str(rebuilt.__cause__)

    class Odd(Exception):
        pass

    assert isinstance(p.rebuild_error(p.encode_error(Odd("?"))), p.RemoteError)


def test_pending_handshakes_are_capped_and_cannot_keep_a_client_out(
    make_server: Callable[..., StudyServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna_spark._coordinator import _gate

    monkeypatch.setattr(_gate, "MAX_PENDING_HANDSHAKES", 3)
    server = make_server(handshake_timeout=30.0)
    silent = [_raw(server) for _ in range(3)]
    try:
        # Every place is taken by a connection that never authenticates, yet a client gets
        # in: the oldest pending handshake is dropped to make room.
        _assert_serving(server)
        assert _closed_by_peer(silent[0], timeout=5)
        # No thread was spent on any of them.
        assert wait_until(
            lambda: not [t for t in server_threads() if t.name.startswith("optuna-spark-conn")]
        )
    finally:
        for s in silent:
            s.close()
