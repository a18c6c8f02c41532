"""Optuna storages reached over the wire.

``StorageServer`` (the coordinator's server) is importable from here for compatibility; it is
imported on first use only, so that workers never load the coordinator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from optuna_spark.storages._remote import RemoteStorage

if TYPE_CHECKING:
    from optuna_spark.coordinator import StorageServer

__all__ = ["RemoteStorage", "StorageServer"]


def __getattr__(name: str) -> Any:
    if name == "StorageServer":
        from optuna_spark.coordinator import StorageServer

        return StorageServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
