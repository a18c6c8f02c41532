"""Authentication handshake, length-prefixed frames and TLS contexts.

Every connection starts with a mutual challenge-response over a shared secret token, before a
single payload byte is decoded. The client speaks first, so that a TLS server can tell a
plaintext client from a TLS one at its first byte::

    client -> server   MAGIC(4) PROTOCOL_VERSION(1)
    server -> client   MAGIC(4) PROTOCOL_VERSION(1) server_nonce(32)
    client -> server   HMAC-SHA256(token, "c" + server_nonce)(32) client_nonce(32)
    server -> client   status(1) [HMAC-SHA256(token, "s" + client_nonce)(32)
                                  max_request_bytes(4)   when status is OK]

The server's largest request is told only to a client that has proven the token; every
client checks its requests against it, whatever endpoint it was made with.

A TLS server answers a plaintext client's first bytes with a greeting whose version is
``TLS_REQUIRED`` and hangs up; a server of another version greets and hangs up, so that the
client can name both versions.

After that each message is a frame: a 4-byte big-endian length, then that many bytes of
msgpack holding one message of :mod:`optuna_spark.wire.messages`. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import ssl
import struct
import time

from optuna_spark.exceptions import AuthenticationError
from optuna_spark.exceptions import MessageTooLargeError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.wire.messages import PROTOCOL_VERSION

MAGIC = b"OSPK"
NONCE_BYTES = 32
DIGEST_BYTES = 32
STATUS_OK = 0
STATUS_AUTH_FAILED = 1

#: Largest request a server accepts by default, and largest reply a client accepts.
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024 * 1024

#: The version byte of a TLS server's answer to a plaintext client.
TLS_REQUIRED = 0xFF

HEADER = struct.Struct(">I")
PREAMBLE = struct.Struct(">4sB")
HELLO = struct.Struct(f">4sB{NONCE_BYTES}s")
#: The server's largest request, told at the end of the handshake.
LIMIT = struct.Struct(">I")


class PeerClosedError(ConnectionError):
    """The other end closed the connection (during a handshake: it may be worth a retry)."""


def digest(token: bytes, role: bytes, nonce: bytes) -> bytes:
    """The HMAC proof of ``token`` for ``nonce``; ``role`` is ``b"c"`` or ``b"s"``."""
    return hmac.new(token, role + nonce, hashlib.sha256).digest()


def tls_required_hello() -> bytes:
    """What a TLS server answers, in plaintext, to a plaintext client."""
    return HELLO.pack(MAGIC, TLS_REQUIRED, bytes(NONCE_BYTES))


def token_bytes(token: str) -> bytes:
    """The token as the key of the handshake's HMAC; it must be a non-empty string."""
    if not isinstance(token, str) or not token:
        raise ValueError(f"The token must be a non-empty string, but got {token!r}.")
    return token.encode("utf-8")


#: Bytes read at a time: a frame's buffer grows as its bytes arrive, so that a header that
#: declares 16 MiB and stops costs nothing until the bytes come.
_CHUNK = 1 << 20


def recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """Read exactly ``n`` bytes, or raise ``ConnectionError`` on end of stream.

    The socket's own timeout applies to the first read; with ``deadline``
    (``time.monotonic()``), the rest must have arrived by then, however it trickles in
    (``TimeoutError`` otherwise).
    """
    first = sock.recv(min(n, _CHUNK))  # usually all of it: no buffer to grow
    if len(first) == n:
        return first
    if not first:
        raise PeerClosedError("the connection was closed by the peer")
    buf = bytearray(first)
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(buf)} of {n} bytes arrived in time")
            sock.settimeout(left)
        chunk = sock.recv(min(n - len(buf), _CHUNK))
        if not chunk:
            raise PeerClosedError("the connection was closed by the peer")
        buf += chunk
    return bytes(buf)


def client_handshake(sock: socket.socket, token: bytes, address: str) -> int:
    """Prove the token to the server and check that the server knows it too; returns the
    largest request the server accepts."""
    sock.sendall(PREAMBLE.pack(MAGIC, PROTOCOL_VERSION))
    magic, version, nonce = HELLO.unpack(recv_exact(sock, HELLO.size))
    if magic != MAGIC:
        raise ProtocolError(f"{address} is not an optuna-spark server (bad greeting {magic!r}).")
    if version == TLS_REQUIRED:
        raise ConnectionError(
            f"The optuna-spark server at {address} uses TLS and this client connected without "
            "it: pass the server's certificate (tls_cadata= or tls_cafile=; the server's "
            "endpoint carries it)."
        )
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"The optuna-spark server at {address} speaks protocol version {version}, but this "
            f"client speaks version {PROTOCOL_VERSION}: install the same optuna-spark version "
            "on the driver and on the workers."
        )
    client_nonce = os.urandom(NONCE_BYTES)
    sock.sendall(digest(token, b"c", nonce) + client_nonce)
    status = recv_exact(sock, 1)[0]
    if status != STATUS_OK:
        raise AuthenticationError(
            f"Authentication failed: the optuna-spark server at {address} rejected the token. "
            "Use the token of the server you are connecting to (StudyServer.token)."
        )
    proof = recv_exact(sock, DIGEST_BYTES)
    if not hmac.compare_digest(proof, digest(token, b"s", client_nonce)):
        raise AuthenticationError(
            f"Authentication failed: the server at {address} does not know the token."
        )
    (limit,) = LIMIT.unpack(recv_exact(sock, LIMIT.size))
    return int(limit)


def frame(body: bytes) -> bytes:
    """The frame carrying ``body``."""
    return HEADER.pack(len(body)) + body


def recv_frame(sock: socket.socket, max_bytes: int, body_timeout: float | None = None) -> bytes:
    """Read one frame's body, refusing frames larger than ``max_bytes`` before reading them.

    With ``body_timeout``, the whole body must arrive within that many seconds of its header
    (the server's defence against a frame dripped a byte at a time); the socket's timeout is
    restored for the next header.
    """
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size))
    if size > max_bytes:
        raise MessageTooLargeError(
            f"A message of {size} bytes exceeds the limit of {max_bytes} bytes; "
            "raise the limits of both ends (max_request_bytes, max_reply_bytes) if intended."
        )
    if body_timeout is None:
        return recv_exact(sock, size)
    timeout = sock.gettimeout()
    try:
        return recv_exact(sock, size, time.monotonic() + body_timeout)
    finally:
        sock.settimeout(timeout)


def server_ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def client_ssl_context(cafile: str | None, cadata: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile, cadata=cadata)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Let a trusted certificate that is not a self-signed root anchor the chain (as Python
    # 3.13 does by default): ``StudyServer.endpoint`` pins the server's own certificate,
    # which a CA may have issued.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx
