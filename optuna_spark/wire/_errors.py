"""Exceptions across the wire: raised on one end, re-raised as the same type on the other."""

from __future__ import annotations

import traceback

import optuna

from optuna_spark.exceptions import AuthenticationError
from optuna_spark.exceptions import MessageTooLargeError
from optuna_spark.exceptions import ProtocolError
from optuna_spark.exceptions import RemoteError
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


def encode_error(exc: BaseException) -> ErrorInfo:
    """``exc`` as data: its type, message, formatted traceback and the names of its bases."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    bases = [type_name(t) for t in type(exc).__mro__[1:] if issubclass(t, BaseException)]
    return ErrorInfo(type_name(type(exc)), str(message), tb, bases)


class RemoteTraceback(Exception):
    """Carries a remote traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def rebuild_error(error: ErrorInfo) -> BaseException:
    """Turn a wire error into the local exception type Optuna users expect.

    A type known on both ends is raised as itself; an unknown one (say the objective's own
    ``class BadData(ValueError)``) as its nearest known base, its name kept in the message,
    so that ``except ValueError`` still catches it. Otherwise :class:`RemoteError`.
    """
    exc: BaseException = RemoteError(error.type, error.message, error.traceback)
    for candidate in [error.type, *error.bases]:
        exc_type = _KNOWN.get(candidate)
        if exc_type is None or exc_type in (BaseException, Exception):
            continue
        message = error.message if candidate == error.type else f"{error.type}: {error.message}"
        try:
            exc = exc_type(message)
        except Exception:
            continue
        break
    if error.traceback:
        exc.__cause__ = RemoteTraceback(error.traceback)
    return exc
