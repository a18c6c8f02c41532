"""``StudyServer``: serves an Optuna storage, and the studies being optimized, over the wire.

The server owns sockets, authentication, framing and threads; what it serves is registered:
each request type of the wire schema has one route. The storage routes and the trial service
(:class:`RunService`) register theirs when the server is made.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING
from typing import Any
from typing import Union

import optuna
from optuna.storages import BaseStorage

from optuna_spark._coordinator._gate import Gate
from optuna_spark._coordinator._patience import DEFAULT_STORAGE_GRACE
from optuna_spark._coordinator._patience import StoragePatience
from optuna_spark._coordinator._read_lane import ReadLane
from optuna_spark._coordinator._run_service import RunService
from optuna_spark._coordinator._storage_routes import register_storage_routes
from optuna_spark._validate import check_positive
from optuna_spark.exceptions import ProtocolError
from optuna_spark.wire import _codec as codec
from optuna_spark.wire import _frames as frames
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._errors import encode_error

if TYPE_CHECKING:
    from optuna_spark._coordinator._pool import RunPool
    from optuna_spark._coordinator._run import StudyRun

_logger = logging.getLogger(__name__)

#: Connections the kernel queues before they are accepted (capped by the system's
#: ``somaxconn``): a thousand workers that start in the same second all get in.
LISTEN_BACKLOG = 4096

#: ``handler(request, connection id) -> result`` for one request type.
Handler = Callable[[Any, int], Any]


class StudyServer:
    """Serves an Optuna storage to ``RemoteStorage`` clients and studies to remote workers.

    Every connection must prove it knows ``token`` before anything it sends is decoded.
    Requests are typed msgpack messages (:mod:`optuna_spark.wire.messages`), validated while
    decoded, never pickles; each is capped at ``max_request_bytes``. One thread serves each
    connection, so a slow or broken client never blocks the others.

    Args:
        storage: Any Optuna storage (an instance or a URL such as ``"sqlite:///x.db"``).
        host: Address to bind. Use the address other machines reach this host by, and only
            that one (on Spark, ``spark.driver.host``).
        port: Port to bind; ``0`` picks a free one (see :attr:`port`).
        token: The shared secret. ``None`` generates a strong random one (see :attr:`token`).
        tls_certfile: PEM certificate (chain) to serve TLS with. Clients then need the CA that
            signed it, or the certificate itself when it is self-signed.
        tls_keyfile: PEM private key for ``tls_certfile`` when it is not in that file.
        max_request_bytes: Largest request accepted; larger ones close the connection.
        handshake_timeout: Seconds a new connection has for the whole handshake (TLS
            included); slower ones are dropped. No thread is spent on a connection before it
            has authenticated, and at most 1,024 handshakes wait at once (the oldest is
            dropped for a new one), so connections that never authenticate cannot keep
            legitimate clients out.
        idle_timeout: Seconds an authenticated connection may stay silent before it is
            closed (``None``: never), and the most a request's body may take to arrive once
            its header has (300 s with ``None``). Workers send heartbeats while they run a
            trial; ``RemoteStorage`` reconnects when it finds an idle connection closed.
        tick_interval: Seconds between the checks of running trials (lost workers, time
            limits, a run's timeout).
        storage_grace: Seconds a ``RemoteStorage`` request whose storage fails transiently
            (a database restarting) is retried before its error is answered (``0``: never).

    Example:

        .. code-block:: python

            import optuna
            from optuna_spark.remote import RemoteStorage, StudyServer

            with StudyServer(optuna.storages.InMemoryStorage()) as server:
                storage = RemoteStorage(server.host, server.port, server.token)
                study = optuna.create_study(storage=storage)
                study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=5)
                assert len(study.trials) == 5
    """

    def __init__(
        self,
        storage: str | BaseStorage,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tls_certfile: str | None = None,
        tls_keyfile: str | None = None,
        max_request_bytes: int = frames.DEFAULT_MAX_REQUEST_BYTES,
        handshake_timeout: float = 5.0,
        idle_timeout: float | None = 300.0,
        tick_interval: float = 0.25,
        storage_grace: float = DEFAULT_STORAGE_GRACE,
    ) -> None:
        check_positive("max_request_bytes", max_request_bytes)
        check_positive("storage_grace", storage_grace, allow_zero=True)
        check_positive("handshake_timeout", handshake_timeout)
        check_positive("idle_timeout", idle_timeout)
        check_positive("tick_interval", tick_interval)
        if tls_keyfile is not None and tls_certfile is None:
            raise ValueError("tls_keyfile was given without tls_certfile; pass both.")
        self._storage = optuna.storages.get_storage(storage)
        self._requested = (host, port)
        self._token = token if token is not None else secrets.token_urlsafe(32)
        self._token_bytes = frames.token_bytes(self._token)
        self._ssl_context: ssl.SSLContext | None = None
        self._tls_cadata: str | None = None  # what clients trust: the certificate (chain)
        if tls_certfile is not None:
            self._ssl_context = frames.server_ssl_context(tls_certfile, tls_keyfile)
            with open(tls_certfile) as f:
                self._tls_cadata = f.read()
        self._max_bytes = max_request_bytes
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        #: Seconds a request's body has to arrive once its header has (however it trickles).
        self._frame_timeout = idle_timeout if idle_timeout is not None else 300.0
        self._tick_interval = tick_interval

        self._lock = threading.Lock()  # guards _connections and _threads
        self._connections: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._threads: list[threading.Thread] = []  # every connection thread not joined yet
        self._conn_ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._accept_thread: threading.Thread | None = None
        self._monitor_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._routes: dict[type[m.Request], Handler] = {}
        self._request_type: Any = None  # the union of the routed request types
        self._closed_listeners: list[Callable[[int], None]] = []
        self._tick_listeners: list[Callable[[], None]] = []
        self._serve(storage_grace)

    def _serve(self, storage_grace: float) -> None:
        """Register what the server serves: pings, the storage, and the runs' trials."""
        self.register(m.Ping, lambda request, conn_id: "pong")
        register_storage_routes(
            self,
            self._storage,
            StoragePatience(storage_grace),
            guard=lambda conn_id, trial_id: self._runs.check_writer(conn_id, trial_id),
            lane=ReadLane(),
        )
        self._runs = RunService(self)

    # -----------------------------------------------------------------------------------------
    # What it serves.

    def register(self, request_type: type[m.Request], handler: Handler) -> None:
        """Serve ``request_type`` with ``handler(request, connection id) -> reply``."""
        if self._listener is not None:
            raise RuntimeError("Register routes before the server starts.")
        self._routes[request_type] = handler
        self._request_type = Union[tuple(self._routes)]  # noqa: UP007 (a runtime union)

    def on_connection_closed(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(connection id)`` when an authenticated connection ends."""
        self._closed_listeners.append(listener)

    def on_tick(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` every ``tick_interval`` seconds while serving."""
        self._tick_listeners.append(listener)

    # -----------------------------------------------------------------------------------------
    # Life cycle.

    def start(self) -> StudyServer:
        """Bind and start serving. Returns ``self``."""
        if self._listener is not None:
            raise RuntimeError("This StudyServer is already started.")
        codec.decoder(self._request_type)  # built before any connection thread decodes
        host, port = self._requested
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        except OSError as e:
            raise OSError(
                e.errno, f"Could not bind the optuna-spark server to {host}:{port}: {e.strerror}"
            ) from e
        self._listener = listener
        self._wakeup = socket.socketpair()
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="optuna-spark-accept", daemon=True
        )
        self._monitor_thread = threading.Thread(
            target=self._monitor_loop, name="optuna-spark-monitor", daemon=True
        )
        self._accept_thread.start()
        self._monitor_thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, close every connection and join every thread of the server."""
        if self._listener is None:
            return
        self._stopping.set()
        assert self._wakeup is not None
        self._wakeup[1].send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join()
        if self._monitor_thread is not None:
            self._monitor_thread.join()
        self._listener.close()
        for s in self._wakeup:
            s.close()
        with self._lock:
            connections = list(self._connections.values())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                # Stop reading only: a reply being written (a worker just told to stop, say)
                # still reaches its client; the thread then sees the end and closes. The
                # plain socket's shutdown, so that a TLS socket keeps its TLS layer.
                socket.socket.shutdown(sock, socket.SHUT_RD)
        # A thread that already left _connections may still be finishing: join them all.
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()
        self._listener = None
        self._wakeup = None

    def __enter__(self) -> StudyServer:
        if self._listener is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -----------------------------------------------------------------------------------------
    # What clients need to know.

    @property
    def storage(self) -> BaseStorage:
        """The storage being served."""
        return self._storage

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._bound()[0])

    @property
    def port(self) -> int:
        """The bound port (the one picked when ``port=0`` was asked)."""
        return int(self._bound()[1])

    @property
    def token(self) -> str:
        """The shared secret clients must present."""
        return self._token

    @property
    def endpoint(self) -> Endpoint:
        """Everything a client needs to connect (including the token: keep it secret)."""
        return Endpoint(
            self.host,
            self.port,
            self._token,
            tls_cadata=self._tls_cadata,
        )

    def _bound(self) -> tuple[Any, ...]:
        if self._listener is None:
            raise RuntimeError("The StudyServer is not started; call start() or use `with`.")
        return tuple(self._listener.getsockname())

    # -----------------------------------------------------------------------------------------
    # Studies being optimized.

    def add_run(self, run: StudyRun) -> None:
        """Serve ``run`` to its workers (its study must use this server's storage)."""
        self._runs.add(run)

    def remove_run(self, run: StudyRun) -> None:
        self._runs.remove(run)

    def add_pool(self, pool: RunPool) -> None:
        """Serve every run of ``pool`` and its workers' asks (one storage for all)."""
        self._runs.add_pool(pool)

    def remove_pool(self, pool: RunPool) -> None:
        self._runs.remove_pool(pool)

    # -----------------------------------------------------------------------------------------
    # Serving.

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wakeup is not None
        gate = Gate(
            self._listener,
            self._token_bytes,
            self._ssl_context,
            self._handshake_timeout,
            self._start_connection,
            self._wakeup[0],
            self._stopping.is_set,
            self._max_bytes,
        )
        gate.run()

    def _start_connection(self, sock: socket.socket) -> None:
        """Serve an authenticated connection in a thread of its own."""
        conn_id = next(self._conn_ids)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(sock, conn_id),
            name=f"optuna-spark-conn-{conn_id}",
            daemon=True,
        )
        with self._lock:
            self._connections[conn_id] = (sock, thread)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        try:
            thread.start()
        except RuntimeError:  # no more threads: refuse this one, keep serving
            with self._lock:
                self._connections.pop(conn_id, None)
                self._threads.remove(thread)
            sock.close()

    def _monitor_loop(self) -> None:
        while not self._stopping.wait(self._tick_interval):
            for listener in self._tick_listeners:
                try:
                    listener()
                except Exception:
                    _logger.exception("A periodic check of the server failed.")

    def _serve_connection(self, sock: socket.socket, conn_id: int) -> None:
        try:
            # A connection silent for longer than the idle limit is closed (a worker's
            # heartbeats keep its connection busy while it runs a trial).
            sock.settimeout(self._idle_timeout)
            self._serve_requests(sock, conn_id)
        except (OSError, ssl.SSLError, ConnectionError, ProtocolError):
            pass
        finally:
            with self._lock:
                self._connections.pop(conn_id, None)
            for listener in self._closed_listeners:
                try:
                    listener(conn_id)
                except Exception:
                    _logger.exception("Cleaning up after a closed connection failed.")
            with contextlib.suppress(OSError):
                sock.close()

    def _serve_requests(self, sock: socket.socket, conn_id: int) -> None:
        routes, request_type = self._routes, self._request_type
        while True:
            try:
                body = frames.recv_frame(sock, self._max_bytes, self._frame_timeout)
            except ProtocolError as e:
                # The stream cannot be resynchronized after a refused frame: answer and close.
                sock.sendall(frames.frame(codec.encode_reply(False, encode_error(e))))
                return
            try:
                request = codec.decode(body, request_type)
                codec.check_depth(request)
                reply = codec.encode_reply(True, routes[type(request)](request, conn_id))
            except Exception as e:
                reply = codec.encode_reply(False, encode_error(e))
            sock.sendall(frames.frame(reply))
