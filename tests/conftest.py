"""Shared fixtures: servers on 127.0.0.1 over each kind of Optuna storage.

The core tests need no Spark; workers are threads or spawned processes on this machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import BaseStorage

from optuna_spark import RemoteStorage
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers
from tests._postgres import PostgresServer
from tests._postgres import find_bin_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Spark Connect tests run last: a Connect client session cannot start in a process that
    runs a classic one, so they stop the classic session (see ``tests/connect``)."""
    items.sort(key=lambda item: item.get_closest_marker("connect") is not None)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One embedded local Spark session for the whole test run.

    Four task slots (threads, not cores: the tests' workers mostly wait) so that four
    workers really run at once, and task retries on, as in the embedded default.
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[4,4]")
        .appName("optuna-spark-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def make_server() -> Iterator[Callable[..., StudyServer]]:
    """Start servers with any ``StudyServer`` arguments; all are closed after the test."""
    servers: list[StudyServer] = []

    def make(storage: str | BaseStorage | None = None, **kwargs: object) -> StudyServer:
        server = StudyServer(
            storage if storage is not None else optuna.storages.InMemoryStorage(),
            **kwargs,  # type: ignore[arg-type]
        )
        servers.append(server.start())
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def server(make_server: Callable[..., StudyServer]) -> StudyServer:
    """A server over a fresh in-memory storage."""
    return make_server()


@pytest.fixture
def remote_storage(server: StudyServer) -> Iterator[RemoteStorage]:
    storage = RemoteStorage(server.host, server.port, server.token)
    yield storage
    storage.close()


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Start worker loops (threads or spawned processes); leftovers are killed afterwards."""
    w = Workers()
    yield w
    w.kill_leftovers()


@pytest.fixture
def open_run(server: StudyServer) -> Iterator[Callable[..., StudyRun]]:
    """Open a ``StudyRun`` on ``server`` for a study (by default a new one in its storage)."""
    runs: list[StudyRun] = []

    def open_(study: optuna.Study | None = None, **kwargs: Any) -> StudyRun:
        if study is None:
            study = optuna.create_study(
                storage=server.storage,
                sampler=optuna.samplers.RandomSampler(seed=0),
                pruner=optuna.pruners.NopPruner(),
            )
        run = StudyRun(study, **kwargs)
        server.add_run(run)
        runs.append(run)
        return run

    yield open_
    for run in runs:
        run.stop()
        server.remove_run(run)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server on 127.0.0.1, for the whole session (see ``_postgres``)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries are missing: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="optuna-spark-postgres-"))
    root.chmod(0o755)  # the server runs as the postgres user when the tests run as root
    try:
        server = PostgresServer(root / "server", bin_dir)
        server.start()
        try:
            server.create_database()
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty ``optuna`` database on the session's PostgreSQL server."""
    postgres_server.drop_and_create_database()
    return postgres_server.url
