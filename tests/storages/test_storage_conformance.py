"""Optuna's own storage conformance suite, run against ``RemoteStorage``.

Every test of ``optuna.testing.pytest_storages.StorageTestCase`` runs once per backend the
server can serve: in-memory, SQLite and a journal file.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.testing.pytest_storages import StorageTestCase

from optuna_spark import RemoteStorage
from optuna_spark.remote import StudyServer
from tests._helpers import BACKENDS
from tests._helpers import make_backend


@pytest.fixture(params=BACKENDS)
def storage(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_server: Callable[..., StudyServer],
) -> Iterator[RemoteStorage]:
    server = make_server(make_backend(request.param, tmp_path))
    remote = RemoteStorage(server.host, server.port, server.token)
    yield remote
    remote.close()


class TestRemoteStorage(StorageTestCase):
    pass
