"""Helpers shared by the tests (importable, unlike conftest)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker
from tests._workers import process_main

BACKENDS = ("inmemory", "sqlite", "journal")


def make_backend(kind: str, tmp_path: Path) -> BaseStorage:
    """A fresh Optuna storage of ``kind`` whose files live under ``tmp_path``."""
    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    raise ValueError(f"Unknown backend {kind!r}.")


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("optuna-spark")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    """Wait until something listens on ``host``:``port`` (a server started by a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"Nothing listens on {host}:{port} after {timeout} s.")


def start_connect_server(
    log_dir: Path, slots: int, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A Spark Connect server (``local[slots, 4]``, its own JVM) on 127.0.0.1, and its URL.

    Its executors' Python is this interpreter. The caller terminates the process.
    """
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    port = free_port()
    full_env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        **(env or {}),
    }
    full_env.pop("SPARK_REMOTE", None)
    full_env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    with open(log_dir / "connect-server.log", "wb") as log:
        server = subprocess.Popen(
            [
                str(spark_home / "bin" / "spark-submit"),
                "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--master",
                f"local[{slots},4]",
                "--conf",
                f"spark.connect.grpc.binding.port={port}",
                "--conf",
                "spark.connect.grpc.binding.address=127.0.0.1",
                "--conf",
                "spark.driver.host=127.0.0.1",
                "--conf",
                "spark.driver.bindAddress=127.0.0.1",
                "--conf",
                "spark.ui.enabled=false",
                "spark-internal",
            ],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 120)
    except BaseException:
        server.kill()
        raise
    return server, f"sc://127.0.0.1:{port}"


def states_of(study: optuna.Study) -> dict[str, int]:
    """How many trials of ``study`` are in each state, by state name."""
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns the last answer."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.01)
    return True


class Workers:
    """Worker loops started as threads or as spawned OS processes, joined by the test."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.processes: list[BaseProcess] = []
        self.results: dict[str, Any] = {}  # thread name -> return value or exception

    def start(
        self,
        spec: WorkerSpec,
        objective: Callable[..., Any],
        n: int,
        mode: str = "thread",
        catch: tuple[type[Exception], ...] = (),
    ) -> Workers:
        if mode == "thread":
            for _ in range(n):
                name = f"test-worker-{len(self.threads)}"
                thread = threading.Thread(
                    target=self._thread_main, args=(name, spec, objective, catch), name=name
                )
                thread.daemon = True
                self.threads.append(thread)
                thread.start()
        elif mode == "process":
            ctx = multiprocessing.get_context("spawn")
            for _ in range(n):
                proc = ctx.Process(target=process_main, args=(spec, objective, catch))
                proc.daemon = True
                self.processes.append(proc)
                proc.start()
        else:
            raise ValueError(f"Unknown worker mode {mode!r}.")
        return self

    def _thread_main(
        self,
        name: str,
        spec: WorkerSpec,
        objective: Callable[..., Any],
        catch: tuple[type[Exception], ...],
    ) -> None:
        try:
            self.results[name] = run_worker(spec, objective, catch=catch)
        except BaseException as e:
            self.results[name] = e

    @property
    def names(self) -> set[str]:
        return {t.name for t in self.threads}

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.pid is not None}

    @property
    def exitcodes(self) -> list[int | None]:
        return [p.exitcode for p in self.processes]

    def join(self, timeout: float = 30.0) -> None:
        """Wait for every worker to end; fail the test if one is still running."""
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        alive += [f"pid {p.pid}" for p in self.processes if p.is_alive()]
        assert not alive, f"workers still running after {timeout} s: {alive}"

    def kill_leftovers(self) -> None:
        for p in self.processes:
            if p.is_alive():
                p.kill()
            p.join(5)
