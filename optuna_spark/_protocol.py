"""The wire: authentication handshake, length-prefixed msgpack frames, error transport.

Every connection starts with a mutual challenge-response over a shared secret token,
before a single payload byte is decoded::

    server -> client   MAGIC(4) VERSION(1) server_nonce(32)
    client -> server   HMAC(token, "c" + server_nonce)(32) client_nonce(32)
    server -> client   status(1) [HMAC(token, "s" + client_nonce)(32) when status is OK]

After that each message is a 4-byte big-endian length followed by that many bytes of msgpack.
A request is ``[method, args]``; a reply is ``[True, result]`` or ``[False, error]`` where
``error`` is ``[type name, message, remote traceback]``. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import ssl
import struct
import traceback
from typing import Any

import msgpack
import optuna

from optuna_spark.exceptions import AuthenticationError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.exceptions import RemoteError

MAGIC = b"OSPK"
VERSION = 1
NONCE_BYTES = 32
DIGEST_BYTES = 32
STATUS_OK = 0
STATUS_AUTH_FAILED = 1
STATUS_BAD_VERSION = 2

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024 * 1024

_HEADER = struct.Struct(">I")
_HELLO = struct.Struct(f">4sB{NONCE_BYTES}s")


def _digest(token: bytes, role: bytes, nonce: bytes) -> bytes:
    return hmac.new(token, role + nonce, hashlib.sha256).digest()


def token_bytes(token: str) -> bytes:
    if not isinstance(token, str) or not token:
        raise ValueError(f"The token must be a non-empty string, but got {token!r}.")
    return token.encode("utf-8")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes, or raise ``ConnectionError`` on end of stream."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("the connection was closed by the peer")
        got += k
    return bytes(buf)


def server_handshake(sock: socket.socket, token: bytes) -> bool:
    """Authenticate a freshly accepted client. Returns whether it may go on."""
    nonce = os.urandom(NONCE_BYTES)
    sock.sendall(_HELLO.pack(MAGIC, VERSION, nonce))
    answer = recv_exact(sock, DIGEST_BYTES + NONCE_BYTES)
    proof, client_nonce = answer[:DIGEST_BYTES], answer[DIGEST_BYTES:]
    if not hmac.compare_digest(proof, _digest(token, b"c", nonce)):
        sock.sendall(bytes([STATUS_AUTH_FAILED]))
        return False
    sock.sendall(bytes([STATUS_OK]) + _digest(token, b"s", client_nonce))
    return True


def client_handshake(sock: socket.socket, token: bytes, address: str) -> None:
    """Prove the token to the server and check that the server knows it too."""
    magic, version, nonce = _HELLO.unpack(recv_exact(sock, _HELLO.size))
    if magic != MAGIC:
        raise ProtocolError(f"{address} is not an optuna-spark server (bad greeting {magic!r}).")
    if version != VERSION:
        raise ProtocolError(
            f"The optuna-spark server at {address} speaks protocol version {version}, "
            f"this client speaks {VERSION}: install the same optuna-spark version on both ends."
        )
    client_nonce = os.urandom(NONCE_BYTES)
    sock.sendall(_digest(token, b"c", nonce) + client_nonce)
    status = recv_exact(sock, 1)[0]
    if status != STATUS_OK:
        raise AuthenticationError(
            f"Authentication failed: the optuna-spark server at {address} rejected the token. "
            "Use the token of the StorageServer you are connecting to (StorageServer.token)."
        )
    proof = recv_exact(sock, DIGEST_BYTES)
    if not hmac.compare_digest(proof, _digest(token, b"s", client_nonce)):
        raise AuthenticationError(
            f"Authentication failed: the server at {address} does not know the token."
        )


def _to_builtin(obj: Any) -> Any:
    """Numpy scalars and other ``.item()``-able numbers travel as Python numbers."""
    item = getattr(obj, "item", None)
    if callable(item):
        value = item()
        if isinstance(value, (bool, int, float, str)):
            return value
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(
        f"{obj!r} of type {type(obj).__name__} cannot be sent to the driver: use JSON-like "
        "values (None, bool, int, float, str, list, dict)."
    )


def encode_frame(obj: Any) -> bytes:
    """One frame (length + msgpack) for ``obj``; ``TypeError`` if it is not plain data."""
    body: bytes = msgpack.packb(obj, use_bin_type=True, default=_to_builtin)
    return _HEADER.pack(len(body)) + body


def send_message(sock: socket.socket, obj: Any) -> None:
    sock.sendall(encode_frame(obj))


def recv_frame(sock: socket.socket, max_bytes: int) -> bytes:
    """Read one frame's body, refusing frames larger than ``max_bytes`` before reading them."""
    (size,) = _HEADER.unpack(recv_exact(sock, _HEADER.size))
    if size > max_bytes:
        raise ProtocolError(
            f"A message of {size} bytes exceeds the limit of {max_bytes} bytes; "
            "raise max_message_bytes on both ends if this is intended."
        )
    return recv_exact(sock, size)


def decode(body: bytes) -> Any:
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except Exception as e:  # msgpack raises several unrelated types on bad input.
        raise ProtocolError(f"Could not decode a message: {e}.") from None


# ---------------------------------------------------------------------------------------------
# Errors across the wire.

_ERROR_TYPES: dict[str, type[BaseException]] = {
    t.__name__: t
    for t in (
        KeyError,
        ValueError,
        TypeError,
        RuntimeError,
        NotImplementedError,
        AttributeError,
        IndexError,
        ZeroDivisionError,
        ArithmeticError,
        AssertionError,
        LookupError,
        OSError,
        TimeoutError,
        MemoryError,
        OverflowError,
        FloatingPointError,
        RecursionError,
        FileNotFoundError,
        PermissionError,
        ConnectionError,
        ImportError,
        ModuleNotFoundError,
        UnicodeError,
    )
}
_ERROR_TYPES.update(
    {
        f"optuna.exceptions.{t.__name__}": t
        for t in (
            optuna.exceptions.DuplicatedStudyError,
            optuna.exceptions.UpdateFinishedTrialError,
            optuna.exceptions.StorageInternalError,
            optuna.exceptions.TrialPruned,
            optuna.exceptions.OptunaError,
        )
    }
)
_ERROR_TYPES.update(
    {f"optuna_spark.exceptions.{t.__name__}": t for t in (AuthenticationError, ProtocolError)}
)


def type_name(exc_type: type[BaseException]) -> str:
    if exc_type.__module__ == "builtins":
        return exc_type.__qualname__
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def encode_error(exc: BaseException) -> list[Any]:
    """``[type name, message, traceback, names of the base types]`` for the wire."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    bases = [type_name(t) for t in type(exc).__mro__[1:] if issubclass(t, BaseException)]
    return [type_name(type(exc)), str(message), tb, bases]


class RemoteTraceback(Exception):
    """Carries a remote traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def rebuild_error(error: list[Any]) -> BaseException:
    """Turn a wire error into the local exception type Optuna users expect.

    A type known on both ends is raised as itself; an unknown one (say the objective's own
    ``class BadData(ValueError)``) as its nearest known base, its name kept in the message,
    so that ``except ValueError`` still catches it. Otherwise :class:`RemoteError`.
    """
    name, message, tb, bases = ([*list(error), "", "", "", []])[:4]
    name, message, tb = str(name), str(message), str(tb)
    exc: BaseException = RemoteError(name, message, tb)
    for candidate in [name, *(bases if isinstance(bases, list) else [])]:
        exc_type = _ERROR_TYPES.get(str(candidate))
        if exc_type is None or exc_type in (BaseException, Exception):
            continue
        try:
            exc = exc_type(message if candidate == name else f"{name}: {message}")
        except Exception:
            continue
        break
    if tb:
        exc.__cause__ = RemoteTraceback(str(tb))
    return exc


# ---------------------------------------------------------------------------------------------
# TLS.


def server_ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def client_ssl_context(cafile: str | None, cadata: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile, cadata=cadata)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Let a trusted certificate that is not a self-signed root anchor the chain (as Python
    # 3.13 does by default): ``StorageServer.endpoint`` pins the server's own certificate,
    # which a CA may have issued.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx
