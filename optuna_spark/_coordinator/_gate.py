"""The gate: accepts connections and runs every handshake in one selector loop.

No thread is spent on a connection before it has proved the token. Each pending handshake
has one deadline for the whole exchange (not one per read), so a client that sends a byte a
second is dropped at its deadline like a silent one. The number of pending handshakes is
capped, and when the cap is reached the oldest pending one is dropped to make room: a flood
of connections that never authenticate cannot keep a legitimate worker out, since a real
handshake takes a round trip or two and a flood would have to fill the whole table faster.

The exchange (see :mod:`optuna_spark.wire._frames`): the client speaks first, so that a TLS
server can tell a plaintext client (first byte ``O``) from a TLS one (first byte 0x16, a TLS
record) and answer it in words rather than let both sides wait.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hmac
import logging
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable

from optuna_spark.wire import _frames as frames
from optuna_spark.wire.messages import PROTOCOL_VERSION

_logger = logging.getLogger(__name__)

#: Handshakes in progress at most; the oldest is dropped to make room for a new connection.
MAX_PENDING_HANDSHAKES = 1024

_TLS_RECORD = 0x16  # the first byte of a TLS ClientHello


class _Pending:
    """One connection in its handshake: what it still has to send and to receive."""

    def __init__(self, sock: socket.socket, deadline: float, tls: bool) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.deadline = deadline
        self.state = "sniff" if tls else "preamble"
        self.inbox = bytearray()
        self.outbox = b""
        self.nonce = b""
        self.after_send: str | None = None  # the state to enter once the outbox is sent

    def expect(self, n: int) -> bytes | None:
        """Read towards ``n`` bytes; returns them once all have arrived."""
        chunk = self.sock.recv(n - len(self.inbox))
        if not chunk:
            raise ConnectionError("closed during the handshake")
        self.inbox += chunk
        if len(self.inbox) < n:
            return None
        data, self.inbox = bytes(self.inbox), bytearray()
        return data

    def send(self, data: bytes, then: str) -> None:
        self.outbox, self.after_send = data, then
        self.state = "send"


class Gate:
    """Accepts on ``listener`` and hands each authenticated socket to ``on_authenticated``.

    Args:
        listener: The bound, listening socket.
        token: The HMAC key every client must prove.
        ssl_context: Serve TLS with it (``None``: plaintext).
        handshake_timeout: Seconds a connection has for the whole handshake.
        on_authenticated: Called with the authenticated socket (blocking mode).
        wakeup: The read end of a socket pair; a byte on it wakes the loop to check ``stopping``.
        stopping: Returns whether the loop must end.
    """

    def __init__(
        self,
        listener: socket.socket,
        token: bytes,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        on_authenticated: Callable[[socket.socket], None],
        wakeup: socket.socket,
        stopping: Callable[[], bool],
        max_request_bytes: int,
    ) -> None:
        self._limit = frames.LIMIT.pack(max_request_bytes)
        self._listener = listener
        self._token = token
        self._ssl = ssl_context
        self._timeout = handshake_timeout
        self._on_authenticated = on_authenticated
        self._wakeup = wakeup
        self._stopping = stopping
        # By file descriptor, in order of arrival, hence of deadline.
        self._pending: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self._sel = selectors.DefaultSelector()

    def run(self) -> None:
        """The loop; returns once ``stopping()`` holds, with every pending socket closed."""
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._sel.register(self._wakeup, selectors.EVENT_READ)
        try:
            while not self._stopping():
                timeout = None
                if self._pending:
                    first = next(iter(self._pending.values()))  # the oldest ends first
                    timeout = max(0.0, first.deadline - time.monotonic())
                for key, events in self._sel.select(timeout):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is not self._wakeup and key.fd in self._pending:
                        self._step(self._pending[key.fd], events)
                self._expire()
        finally:
            for pending in list(self._pending.values()):
                self._drop(pending)
            self._sel.close()

    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections, without starving the handshakes
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE) and self._pending:
                    # Out of file descriptors: free one, the next select accepts again.
                    self._drop(next(iter(self._pending.values())))
                else:
                    _logger.warning("Accepting a connection failed: %s.", e)
                return
            if len(self._pending) >= MAX_PENDING_HANDSHAKES:
                self._drop(next(iter(self._pending.values())))
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            pending = _Pending(sock, time.monotonic() + self._timeout, self._ssl is not None)
            self._pending[pending.fd] = pending
            self._sel.register(sock, selectors.EVENT_READ)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.deadline > now:
                return
            self._drop(oldest)

    def _drop(self, pending: _Pending) -> None:
        self._pending.pop(pending.fd, None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(pending.sock)
        with contextlib.suppress(OSError):
            pending.sock.close()

    def _watch(self, pending: _Pending, events: int) -> None:
        self._sel.modify(pending.sock, events)

    def _step(self, pending: _Pending, events: int) -> None:
        try:
            while self._advance(pending):
                pass
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            self._watch(pending, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._watch(pending, selectors.EVENT_WRITE)
        except (OSError, ConnectionError, ValueError):
            self._drop(pending)

    def _advance(self, p: _Pending) -> bool:
        """Take one step of ``p``'s handshake; returns whether another may follow at once."""
        step = {
            "sniff": self._sniff,
            "tls": self._tls,
            "preamble": self._preamble,
            "proof": self._proof,
            "send": self._send,
            "ready": self._ready,
        }.get(p.state)
        if step is None:  # "close"
            self._drop(p)
            return False
        return step(p)

    def _sniff(self, p: _Pending) -> bool:
        """TLS server: is it a TLS client (a TLS record first) or a plaintext one?"""
        first = p.sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise ConnectionError("closed before the handshake")
        if first[0] != _TLS_RECORD:  # plaintext: say in plaintext that TLS is required
            p.send(frames.tls_required_hello(), then="close")
            return True
        assert self._ssl is not None
        self._sel.unregister(p.sock)
        p.sock = self._ssl.wrap_socket(p.sock, server_side=True, do_handshake_on_connect=False)
        self._sel.register(p.sock, selectors.EVENT_READ)  # the same descriptor
        p.state = "tls"
        return True

    def _tls(self, p: _Pending) -> bool:
        p.sock.do_handshake()  # type: ignore[attr-defined]
        p.state = "preamble"
        return True

    def _preamble(self, p: _Pending) -> bool:
        preamble = p.expect(frames.PREAMBLE.size)
        if preamble is None:
            return False
        magic, version = frames.PREAMBLE.unpack(preamble)
        if magic != frames.MAGIC:
            if preamble[0] != _TLS_RECORD:
                raise ConnectionError("not an optuna-spark client")
            # A TLS client on a plaintext server: answer in plaintext, which its TLS layer
            # refuses at once (rather than a reset, which it would retry).
            with contextlib.suppress(OSError):
                while p.sock.recv(65536):
                    pass
            p.send(frames.HELLO.pack(frames.MAGIC, 0, bytes(frames.NONCE_BYTES)), "close")
            return True
        p.nonce = os.urandom(frames.NONCE_BYTES)
        hello = frames.HELLO.pack(frames.MAGIC, PROTOCOL_VERSION, p.nonce)
        # Another version gets the greeting (its client names both versions), no more.
        p.send(hello, then="proof" if version == PROTOCOL_VERSION else "close")
        return True

    def _proof(self, p: _Pending) -> bool:
        answer = p.expect(frames.DIGEST_BYTES + frames.NONCE_BYTES)
        if answer is None:
            return False
        proof, client_nonce = answer[: frames.DIGEST_BYTES], answer[frames.DIGEST_BYTES :]
        if not hmac.compare_digest(proof, frames.digest(self._token, b"c", p.nonce)):
            _logger.warning("Rejected a connection that failed authentication.")
            p.send(bytes([frames.STATUS_AUTH_FAILED]), then="close")
            return True
        proof = frames.digest(self._token, b"s", client_nonce)
        p.send(bytes([frames.STATUS_OK]) + proof + self._limit, "ready")
        return True

    def _send(self, p: _Pending) -> bool:
        sent = p.sock.send(p.outbox)
        p.outbox = p.outbox[sent:]
        if p.outbox:
            self._watch(p, selectors.EVENT_WRITE)
            return False
        assert p.after_send is not None
        p.state, p.after_send = p.after_send, None
        self._watch(p, selectors.EVENT_READ)
        return True

    def _ready(self, p: _Pending) -> bool:
        self._pending.pop(p.fd, None)
        self._sel.unregister(p.sock)
        p.sock.setblocking(True)
        self._on_authenticated(p.sock)
        return False
