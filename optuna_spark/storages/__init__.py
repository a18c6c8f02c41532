"""Optuna storages served by the driver."""

from optuna_spark._service._server import StorageServer
from optuna_spark.storages._remote import RemoteStorage

__all__ = ["RemoteStorage", "StorageServer"]
