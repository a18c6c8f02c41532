"""Encoding and decoding of messages: msgspec's msgpack, typed, validated while decoding."""

from __future__ import annotations

import threading
import types
import typing
from typing import Any

import msgspec

from optuna_spark.exceptions import ProtocolError
from optuna_spark.wire.messages import ErrorInfo
from optuna_spark.wire.messages import Reply
from optuna_spark.wire.messages import Request


def _enc_hook(obj: Any) -> Any:
    """Numpy scalars and other ``.item()``-able numbers travel as Python numbers."""
    item = getattr(obj, "item", None)
    if callable(item):
        value = item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    raise TypeError(
        f"{obj!r} of type {type(obj).__name__} cannot be sent to the driver: use JSON-like "
        "values (None, bool, int, float, str, list, dict)."
    )


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


def encode(message: Any) -> bytes:
    """``message`` as msgpack; ``TypeError`` when it holds something that is not plain data."""
    try:
        return _encoder.encode(message)
    except OverflowError as e:
        raise ValueError(f"A number is too large to be sent: {e}.") from None


#: How deeply values (user and system attributes, parameters) may nest lists and dicts: far
#: inside what every Optuna storage, ``copy.deepcopy`` and JSON can handle.
MAX_VALUE_DEPTH = 32


_SCALARS = (int, float, str, bool, type(None))


_NESTING: dict[type, tuple[str, ...]] = {}


def _nesting_fields(struct_type: type) -> tuple[str, ...]:
    """The fields of ``struct_type`` (a Struct) that may hold lists, dicts or structs (the
    rest are numbers and strings: most requests have none to walk)."""
    fields = _NESTING.get(struct_type)
    if fields is None:
        names = []
        for field in msgspec.structs.fields(struct_type):
            hint = field.type
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            options = typing.get_args(hint) if union else (hint,)
            if not all(option in _SCALARS for option in options):
                names.append(field.name)
        fields = _NESTING[struct_type] = tuple(names)
    return fields


def check_depth(message: Any, limit: int = MAX_VALUE_DEPTH) -> None:
    """Refuse a message whose values nest lists and dicts more than ``limit`` levels."""
    kind = type(message)
    if hasattr(kind, "__struct_fields__") and not _nesting_fields(kind):
        return  # numbers and strings only
    stack: list[tuple[Any, int]] = [(message, 0)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if hasattr(kind, "__struct_fields__"):  # a Struct (cheaper than isinstance here)
            stack.extend((getattr(value, f), depth) for f in _nesting_fields(kind))
            continue
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth >= limit:
            raise ProtocolError(
                f"A value nests lists and dicts more than {limit} levels deep; keep attributes "
                "and values flatter (or store large structures in files or artifacts)."
            )
        stack.extend((child, depth + 1) for child in children)


def encode_request(request: Request) -> bytes:
    """``request`` as msgpack, checked against its own schema first.

    Structs are not type-checked when built, so a wrong argument (a number where a name is
    expected, say) is caught here, as the ``TypeError`` Optuna users expect, instead of being
    refused by the server.
    """
    try:
        check_depth(request)
    except ProtocolError as e:
        raise ValueError(str(e)) from None
    body = encode(request)
    try:
        decoder(type(request)).decode(body)
    except msgspec.ValidationError as e:
        raise TypeError(f"Bad argument for {type(request).__name__}: {e}.") from None
    return body


def encode_reply(ok: bool, body: Any) -> bytes:
    """A :class:`Reply` envelope around ``body`` (a result, or an :class:`ErrorInfo`)."""
    return encode(Reply(ok, msgspec.Raw(encode(body))))


_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}
_decoders_lock = threading.Lock()


def decoder(type_: Any) -> msgspec.msgpack.Decoder[Any]:
    """A (cached) decoder that accepts only ``type_``.

    Decoders are built one at a time: building one analyses the message classes, and msgspec
    0.18-0.22 can crash the process (a segmentation fault) when threads do that at once, as a
    server's connection threads would on a storm of first requests.
    """
    found = _decoders.get(type_)
    if found is None:
        with _decoders_lock:
            found = _decoders.get(type_)
            if found is None:
                found = _decoders[type_] = msgspec.msgpack.Decoder(type_)
    return found


def decode(body: bytes | msgspec.Raw, type_: Any) -> Any:
    """Decode ``body`` as ``type_``; anything else is a :class:`ProtocolError` saying why."""
    try:
        return decoder(type_).decode(body)
    except msgspec.ValidationError as e:
        raise ProtocolError(f"A message does not fit the wire schema: {e}.") from None
    except msgspec.DecodeError as e:
        raise ProtocolError(f"A message is not valid msgpack: {e}.") from None


def decode_reply(body: bytes, type_: Any) -> tuple[bool, Any]:
    """``(True, result of type_)`` or ``(False, ErrorInfo)`` from a reply frame's body."""
    reply: Reply = decode(body, Reply)
    if reply.ok:
        return True, decode(reply.body, type_)
    return False, decode(reply.body, ErrorInfo)
