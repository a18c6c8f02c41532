"""Finding or starting the Spark session, and where the driver's service should listen."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from optuna_spark._spark._jvm_stderr import quiet_jvm_start
from optuna_spark.exceptions import SparkSetupError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)

#: How often Spark may retry a failed task of an embedded session (a lost Python worker).
EMBEDDED_TASK_RETRIES = 4

#: The embedded session's logging: errors only, and a lost worker is not a stack trace (the
#: driver reports each lost trial in one line). A session of your own keeps Spark's logging.
_LOG4J = Path(__file__).with_name("log4j2.properties")


def _java_version_error() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    java: str | None
    if java_home:
        java = os.path.join(java_home, "bin", "java")
        if not os.path.exists(java):
            on_path = shutil.which("java")
            fix = (
                f"Unset JAVA_HOME to use the java on PATH ({on_path}), or point it to a Java "
                "17+ installation."
                if on_path
                else "Point it to a Java 17+ installation (for example from `apt-get install "
                "-y openjdk-17-jre-headless`)."
            )
            return (
                f"JAVA_HOME is {java_home!r}, which has no bin/java (Spark uses JAVA_HOME when "
                f"it is set). {fix}"
            )
    else:
        java = shutil.which("java")
    if not java or not os.path.exists(java):
        return (
            "Spark needs Java 17 or newer, and no `java` was found on PATH or in JAVA_HOME. "
            "Install it (for example `apt-get install -y openjdk-17-jre-headless`, or "
            "`brew install openjdk@17`) or set JAVA_HOME."
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"Could not run {java} -version: {e}. Check your Java installation or JAVA_HOME."
    text = out.stderr + out.stdout
    for token in text.replace('"', " ").split():
        head = token.split(".")[0].split("-")[0]
        if head.isdigit() and token[0].isdigit():
            major = int(head)
            if major == 1:  # "1.8.0_292"
                major = int(token.split(".")[1])
            if major < 17:
                return (
                    f"PySpark 4 needs Java 17 or newer, but {java} is Java {major}. Install "
                    "Java 17+ (for example `apt-get install -y openjdk-17-jre-headless`) and "
                    "point JAVA_HOME to it."
                )
            return None
    return None


def active_session() -> SparkSession | None:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def embedded_session(n_slots: int) -> SparkSession:
    """A local Spark session with ``n_slots`` task slots, task retries on.

    The executors' Python is this interpreter (``PYSPARK_PYTHON``), so a virtualenv works.
    The driver listens on the loopback address only: local mode needs nothing else.
    """
    error = _java_version_error()
    if error is not None:
        raise SparkSetupError(error)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    master = f"local[{n_slots},{EMBEDDED_TASK_RETRIES}]"
    # Spark takes seconds to start (more on a loaded machine): say so at once.
    print(f"optuna-spark: starting an embedded Spark session ({master})...", file=sys.stderr)
    try:
        with quiet_jvm_start():
            session = (
                SparkSession.builder.master(master)
                .appName("optuna-spark")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.python.worker.reuse", "true")
                .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_LOG4J}")
                .getOrCreate()
            )
    except KeyboardInterrupt:
        # Ctrl-C while the JVM starts: end what started (the JVM itself exits with this
        # process, when its pipe to it closes) and leave py4j's frames out of the report.
        _stop_partial_start()
        raise KeyboardInterrupt from None
    except Exception as e:
        raise SparkSetupError(
            f"Could not start an embedded Spark session ({master}): {e}. Check that Java 17+ "
            'is installed and that PySpark works: python -c "from pyspark.sql import '
            "SparkSession; SparkSession.builder.master('local[1]').getOrCreate()\""
        ) from e
    session.sparkContext.setLogLevel("ERROR")
    _logger.info("Started an embedded Spark session %s.", master)
    return session


def _stop_partial_start() -> None:
    """Stop the SparkContext and the JVM gateway a start interrupted midway, if any."""
    from pyspark import SparkContext

    with contextlib.suppress(Exception):
        context = SparkContext._active_spark_context
        if context is not None:
            context.stop()
    with contextlib.suppress(Exception):
        gateway = SparkContext._gateway
        if gateway is not None:
            gateway.shutdown()
            gateway.proc.kill()


def is_local_master(master: str) -> bool:
    return master == "local" or master.startswith("local[") or master.startswith("local-cluster")


def is_connect(session: SparkSession) -> bool:
    """Whether ``session`` is a Spark Connect session (without importing Connect's client)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def master(session: SparkSession) -> str | None:
    """``spark.master``, on classic and Connect sessions (``None`` when it cannot be read)."""
    if not is_connect(session):
        # The context's own attribute: ``getConf()`` copies the whole configuration from the
        # JVM, about 180 round trips.
        return str(session.sparkContext.master or "")
    try:
        value = session.conf.get("spark.master", None)
    except Exception:  # a Connect server that does not expose it
        return None
    return None if value is None else str(value)


def default_parallelism(session: SparkSession) -> int:
    """The session's task slots (``defaultParallelism``), on classic and Connect sessions."""
    if not is_connect(session):
        return int(session.sparkContext.defaultParallelism)
    from pyspark.sql.functions import spark_partition_id

    # Connect has no SparkContext: a range without a partition count is split into the
    # default parallelism, so count its partitions.
    rows = session.range(0, 1 << 16).select(spark_partition_id().alias("p")).distinct()
    return max(1, rows.count())


def _connect_server_host(session: SparkSession) -> str | None:
    """The host of the Spark Connect server ``session`` talks to."""
    url = os.environ.get("SPARK_REMOTE") or ""
    with contextlib.suppress(Exception):  # not every server exposes it
        url = str(session.conf.get("spark.remote", url) or url)
    if url.startswith("sc://"):
        return url[len("sc://") :].split("/")[0].split(":")[0] or None
    return "localhost" if url.startswith("local") else None


def driver_host(session: SparkSession) -> str:
    """The address Spark says the driver lives at: where executors can reach us.

    In local mode every executor runs on this machine, so the loopback address is enough and
    nothing is exposed to the network. On Spark Connect the service runs in this (client)
    process: the address this machine reaches the Connect server from.
    """
    if is_connect(session):
        return _connect_client_host(session)
    if is_local_master(master(session) or "local"):
        return "127.0.0.1"
    host = session.sparkContext.getConf().get("spark.driver.host")
    if host is None:
        raise SparkSetupError(
            "spark.driver.host is not set, so the address executors reach the driver at is "
            "unknown; pass SparkExecutor(service_host=...) with that address."
        )
    return str(host)


def _connect_client_host(session: SparkSession) -> str:
    server = _connect_server_host(session)
    master_url = master(session)
    if server in ("localhost", "127.0.0.1", "::1") or (
        master_url is not None and is_local_master(master_url)
    ):
        return "127.0.0.1"  # the server and its executors run on this machine
    if server is None:
        raise SparkSetupError(
            "Could not tell where this Spark Connect session's server runs, so the address "
            "its executors reach this process at is unknown; pass "
            "SparkExecutor(service_host=...) with that address."
        )
    # The local address of the route to the server (a UDP socket sends nothing).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((server, 15002))
            return str(probe.getsockname()[0])
        except OSError as e:
            raise SparkSetupError(
                f"Could not find this machine's address towards the Spark Connect server "
                f"{server!r}: {e}. Pass SparkExecutor(service_host=...) with the address its "
                "executors reach this process at."
            ) from e
