"""A private PostgreSQL server for the tests: ``initdb`` in a temporary directory, listening on
a free port of 127.0.0.1 only, run as the ``postgres`` user when the tests run as root; never
a system service. Its binaries come from the Debian package (``scripts/bootstrap.sh test``
installs it)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from tests._helpers import free_port
from tests._helpers import wait_port


def find_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


class PostgresServer:
    """One server in ``root`` (a fresh directory), with a database ``optuna``.

    Args:
        root: Where its data, socket and log go: a new directory that the ``postgres`` user
            can reach (not under pytest's own temporary directory, which only root can).
        bin_dir: PostgreSQL's binaries (:func:`find_bin_dir`).
        host: The address it listens on (another than 127.0.0.1 only in a network namespace
            the test made, whose address ``trusted`` covers).
        namespace: Run the server in this network namespace (``ip netns exec``).
        trusted: Clients' network (CIDR) let in without a password, besides 127.0.0.1.
    """

    def __init__(
        self,
        root: Path,
        bin_dir: Path,
        *,
        host: str = "127.0.0.1",
        namespace: str | None = None,
        trusted: str | None = None,
    ) -> None:
        self.root, self.bin_dir, self.host = root, bin_dir, host
        self.data, self.log = root / "data", root / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@{host}:{self.port}/optuna"
        self._prefix = [] if namespace is None else ["ip", "netns", "exec", namespace]
        self._user = "postgres" if os.getuid() == 0 else None
        root.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if trusted is not None:
            with open(self.data / "pg_hba.conf", "a") as f:
                f.write(f"host all all {trusted} trust\n")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        if tool == "pg_ctl":  # the server's own process, where it is to run
            command = [*self._prefix, *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        wait_port(self.port, 60, self.host)

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``fast``: connections are closed at once, as in a failover)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self) -> None:
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", "postgres", "optuna")

    def drop_and_create_database(self) -> None:
        """A fresh ``optuna`` database (between tests that share the server)."""
        self._run(
            "dropdb",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "--force",
            "--if-exists",
            "optuna",
        )
        self.create_database()
