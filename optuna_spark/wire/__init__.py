"""The wire, shared by both ends: typed messages, frames and authentication, errors, client.

Both the coordinator (driver or in-cluster) and the workers import this package; it imports
neither of them.
"""

from optuna_spark.wire import messages
from optuna_spark.wire._client import Connection
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._errors import RemoteTraceback
from optuna_spark.wire._errors import encode_error
from optuna_spark.wire._errors import rebuild_error
from optuna_spark.wire.messages import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "Connection",
    "Endpoint",
    "RemoteTraceback",
    "encode_error",
    "messages",
    "rebuild_error",
]
