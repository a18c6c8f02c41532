"""Exceptions raised by optuna-spark.

Errors that happen on the driver while serving a remote call are raised again on the caller
with the same type Optuna raises locally (``KeyError``, ``ValueError``,
``optuna.exceptions.DuplicatedStudyError`` ...). The types below are for what only a
distributed run can get wrong.
"""

from __future__ import annotations


class OptunaSparkError(Exception):
    """Base class of the errors raised by optuna-spark."""


class AuthenticationError(OptunaSparkError):
    """The two ends of a connection do not share the same secret token."""


class ProtocolError(OptunaSparkError):
    """A peer sent a message that breaks the wire format (bad frame, oversized, undecodable)."""


class MessageTooLargeError(ProtocolError):
    """A message is larger than the receiving end accepts (a ``StudyServer``'s
    ``max_request_bytes``, a client's ``max_reply_bytes``).

    The receiver refuses it before reading it and closes the connection, since the stream
    cannot be resynchronized; the next call opens a new one.
    """


class RemoteError(OptunaSparkError):
    """An error raised on the other end whose type has no local equivalent.

    Attributes:
        remote_type: Qualified name of the exception type raised remotely.
        remote_traceback: The formatted remote traceback.
    """

    def __init__(self, remote_type: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class SparkSetupError(OptunaSparkError):
    """Spark could not be started or used as configured."""


class CheckpointError(OptunaSparkError):
    """A checkpoint cannot be saved or loaded as configured (no store for the run)."""


class StorageUnavailableError(OptunaSparkError):
    """The study's storage kept failing (unreachable, restarting) for longer than the run's
    ``storage_grace``: the optimization stops."""
