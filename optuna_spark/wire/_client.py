"""The client end of a connection: an :class:`Endpoint` to reach, a :class:`Connection`."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

from optuna_spark.exceptions import MessageTooLargeError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.wire import _codec as codec
from optuna_spark.wire import _frames as frames
from optuna_spark.wire._errors import rebuild_error
from optuna_spark.wire.messages import Request


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where a server listens and how to prove we may talk to it.

    It is plain data, so it pickles into Spark closures. The token is a secret: treat an
    ``Endpoint`` like a password.
    """

    host: str
    port: int
    token: str = dataclasses.field(repr=False)
    tls_cadata: str | None = dataclasses.field(default=None, repr=False)
    tls_cafile: str | None = None
    tls_server_hostname: str | None = None
    connect_timeout: float = 10.0  # for connecting and the handshake, retries included
    timeout: float | None = None
    max_reply_bytes: int = frames.DEFAULT_MAX_REPLY_BYTES

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        return self.tls_cadata is not None or self.tls_cafile is not None


#: Failures of a connection attempt that a later attempt may not meet: a server too busy to
#: finish the handshake in time, a connection dropped during it (a flood of other
#: connections). A refused connection is not one: nobody listens there (the study is over,
#: or the address is wrong), and a task that waits for nothing would only hold its slot.
_TRANSIENT = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    TimeoutError,
    frames.PeerClosedError,
)


def _open(endpoint: Endpoint, token: bytes) -> tuple[socket.socket, int]:
    """Connect and authenticate, retrying transient failures with backoff until
    ``endpoint.connect_timeout`` seconds have passed (one deadline for everything); returns
    the socket and the largest request the server accepts."""
    deadline = time.monotonic() + endpoint.connect_timeout
    delay = 0.05
    while True:
        try:
            return _connect_once(endpoint, token, deadline)
        except _TRANSIENT as e:
            left = deadline - time.monotonic()
            if left <= delay:
                raise ConnectionError(
                    f"Could not connect to the optuna-spark server at {endpoint.address} "
                    f"within {endpoint.connect_timeout:g} s: {e or type(e).__name__}. Check "
                    "that the driver's server is running and reachable from this host."
                ) from e
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(2 * delay, 1.0, left / 4)
        except OSError as e:
            if type(e) is ConnectionError:  # already says what went wrong
                raise
            raise ConnectionError(
                f"Could not connect to the optuna-spark server at {endpoint.address}: {e}. "
                "Check that the driver's server is running (it lives as long as its optimize "
                "call) and reachable from this host."
            ) from e


def _connect_once(endpoint: Endpoint, token: bytes, deadline: float) -> tuple[socket.socket, int]:
    address = endpoint.address
    left = max(0.001, deadline - time.monotonic())
    raw = socket.create_connection((endpoint.host, endpoint.port), timeout=left)
    sock: socket.socket = raw
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        raw.settimeout(max(0.001, deadline - time.monotonic()))  # the whole handshake
        if endpoint.uses_tls:
            ctx = frames.client_ssl_context(endpoint.tls_cafile, endpoint.tls_cadata)
            try:
                sock = ctx.wrap_socket(
                    raw, server_hostname=endpoint.tls_server_hostname or endpoint.host
                )
            except ssl.SSLCertVerificationError as e:
                raise ConnectionError(
                    f"The connection to the optuna-spark server at {address} failed during "
                    f"the handshake: {e}."
                ) from e
            except (ssl.SSLError, OSError) as e:
                raise ConnectionError(
                    f"The TLS handshake with the optuna-spark server at {address} failed: {e}. "
                    "This client uses TLS; if the server does not, connect without "
                    "tls_cadata/tls_cafile."
                ) from e
        limit = frames.client_handshake(sock, token, address)
    except BaseException:
        raw.close()
        raise
    return sock, limit


class Connection:
    """One authenticated connection; ``call`` is thread-safe (calls are serialized)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._sock, self._max_request = _open(endpoint, frames.token_bytes(endpoint.token))
        self._sock.settimeout(endpoint.timeout)
        self._closed = False
        self._pending: list[Any] = []  # reply types of send() requests not read yet
        self._deferred: BaseException | None = None  # first error among them

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def closed(self) -> bool:
        return self._closed

    def looks_closed(self) -> bool:
        """Whether the server has hung up on this idle connection (say, past its idle limit).

        An idle connection has nothing to read: if it is readable, the server closed it.
        """
        if self._closed:
            return True
        with self._lock:
            if self._pending:
                return False  # replies are owed: not idle
            try:
                readable, _, _ = select.select([self._sock], [], [], 0)
            except (OSError, ValueError):
                readable = [self._sock]
            if readable:
                self._close_locked()
        return self._closed

    def call(self, request: Request, *, raise_deferred: bool = True) -> Any:
        """Send ``request``, wait for its reply and return it; remote errors are raised here.

        Replies to earlier :meth:`send` requests are read first. The first error among them
        is raised here instead of sending this request (unless ``raise_deferred`` is false,
        then it waits for the next call that allows it).
        """
        with self._lock:
            self._drain_locked()
            if raise_deferred and self._deferred is not None:
                error, self._deferred = self._deferred, None
                raise error
            body = self._roundtrip_locked(request, wait=True)
        assert body is not None
        ok, result = codec.decode_reply(body, request.reply)
        if ok:
            return result
        error = rebuild_error(result)
        if isinstance(error, MessageTooLargeError):
            # The server drops a connection whose frame it refused: so do we, so that the
            # next call does not fail on a dead socket.
            self.close()
        raise error

    def flush(self) -> None:
        """Read the replies to earlier :meth:`send` requests; raise the first error among them."""
        with self._lock:
            self._drain_locked()
            if self._deferred is not None:
                error, self._deferred = self._deferred, None
                raise error

    def send(self, request: Request) -> None:
        """Send a request without waiting for its reply (it is read by the next call).

        For requests whose answer the caller does not need at once (``report``): it saves
        a round trip while the server still handles requests in order.
        """
        with self._lock:
            self._roundtrip_locked(request, wait=False)
            self._pending.append(request.reply)

    def _roundtrip_locked(self, request: Request, *, wait: bool) -> bytes | None:
        if self._closed:
            raise ConnectionError(f"The connection to {self._endpoint.address} is closed.")
        body = codec.encode_request(request)  # bad arguments fail here, harmlessly
        limit = self._max_request  # as the server told it in the handshake
        if len(body) > limit:
            raise MessageTooLargeError(
                f"A {type(request).__name__} message of {len(body)} bytes exceeds the "
                f"server's limit of {limit} bytes (StudyServer's max_request_bytes); send "
                "less (large results belong in files or artifacts), or raise the limit."
            )
        data = frames.frame(body)
        with self._io(type(request).__name__):
            self._sock.sendall(data)
            if not wait:
                return None
            return frames.recv_frame(self._sock, self._endpoint.max_reply_bytes)

    def _drain_locked(self) -> None:
        while self._pending:
            with self._io("a reply"):
                body = frames.recv_frame(self._sock, self._endpoint.max_reply_bytes)
            reply_type = self._pending.pop(0)
            ok, result = codec.decode_reply(body, reply_type)
            if not ok and self._deferred is None:
                self._deferred = rebuild_error(result)

    @contextlib.contextmanager
    def _io(self, what: str) -> Iterator[None]:
        """Close the connection on any interruption of a request or a reply in flight.

        A reply left unread (Ctrl-C between send and receive, say) would otherwise be taken
        for the answer to the next request.
        """
        try:
            yield
        except (OSError, ProtocolError) as e:
            self._close_locked()
            raise ConnectionError(
                f"Lost the connection to the optuna-spark server at "
                f"{self._endpoint.address} during {what}: {e}"
            ) from e
        except BaseException:
            self._close_locked()
            raise

    def _close_locked(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.close()

    def close(self) -> None:
        with self._lock:
            self._close_locked()
