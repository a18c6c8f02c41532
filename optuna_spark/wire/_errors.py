"""Exceptions across the wire: raised on one end, re-raised as the same type on the other."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import optuna

from optuna_spark.exceptions import AuthenticationError
from optuna_spark.exceptions import MessageTooLargeError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.exceptions import RemoteError
from optuna_spark.wire.messages import MAX_ERROR_TEXT
from optuna_spark.wire.messages import ErrorInfo

_KNOWN: dict[str, type[BaseException]] = {
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
_KNOWN.update(
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
_KNOWN.update(
    {
        f"optuna_spark.exceptions.{t.__name__}": t
        for t in (AuthenticationError, MessageTooLargeError, ProtocolError)
    }
)


def type_name(exc_type: type[BaseException]) -> str:
    """``"ValueError"`` for built-in types, ``"module.Qualified"`` for the others."""
    if exc_type.__module__ == "builtins":
        return exc_type.__qualname__
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def shorten(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text``, or its beginning and end with a note of how much was left out between."""
    if len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit} characters left out by optuna-spark ...]\n"
    head = (limit - len(note)) // 2
    return text[:head] + note + text[len(text) - (limit - len(note) - head) :]


def encode_error(exc: BaseException) -> ErrorInfo:
    """``exc`` as data: its type, message, formatted traceback and the names of its bases.

    The message and the traceback keep at most :data:`MAX_ERROR_TEXT` characters each (their
    beginning and end), so that an error of any size reaches the other end as itself.
    """
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    bases = [type_name(t) for t in type(exc).__mro__[1:] if issubclass(t, BaseException)]
    return ErrorInfo(type_name(type(exc)), shorten(str(message)), shorten(tb), bases)


class RemoteTraceback(Exception):
    """Carries a remote traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _local_type(name: str) -> type[BaseException] | None:
    """The exception type called ``name`` here, if its module is already imported.

    Built-in names are looked up in :mod:`builtins`; ``"module.Qualified"`` in that module,
    only if this process has imported it already (the objective's own module, on the driver
    that shipped it): a name from the network never makes this process import anything.
    """
    known = _KNOWN.get(name)
    if known is not None:
        return known
    module_name, _, qualname = name.rpartition(".")
    if not module_name:
        module_name, qualname = "builtins", name
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    # Only errors: a remote KeyboardInterrupt or SystemExit must not look like one of ours.
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def _instantiate(exc_type: type[BaseException], message: str) -> BaseException | None:
    try:
        return exc_type(message)
    except Exception:
        pass
    try:  # a constructor that wants other arguments: keep the type and the message
        exc = exc_type.__new__(exc_type)
        exc.args = (message,)
        return exc
    except Exception:
        return None


def rebuild_error(error: ErrorInfo) -> BaseException:
    """Turn a wire error into the exception it was, raised again on this end.

    The same type is used whenever it exists here: built-in types (a bare ``Exception``
    included) and Optuna's, and any type
    whose module this process has imported (user exception classes from the objective's own
    module included). Otherwise the nearest base type that exists here, with the original
    type's name in the message (so ``except ValueError`` still catches a remote
    ``BadData(ValueError)``), else :class:`RemoteError`. The remote traceback is the
    ``__cause__``.
    """
    exc: BaseException | None = None
    for candidate in [error.type, *error.bases]:
        exc_type = _local_type(candidate)
        if exc_type is None or (candidate != error.type and exc_type is Exception):
            continue  # a base as general as Exception says less than RemoteError
        message = error.message if candidate == error.type else f"{error.type}: {error.message}"
        exc = _instantiate(exc_type, message)
        if exc is not None:
            break
    if exc is None:
        exc = RemoteError(error.type, error.message, error.traceback)
    if error.traceback:
        exc.__cause__ = RemoteTraceback(error.traceback)
    return exc
