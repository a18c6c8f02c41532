"""Optuna storages reached over the wire: :class:`RemoteStorage`, the client of a
``StudyServer`` (:mod:`optuna_spark.remote`)."""

from optuna_spark._storages._remote import RemoteStorage

__all__ = ["RemoteStorage"]
