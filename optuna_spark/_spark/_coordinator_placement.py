"""Where the coordinator lives: ``coordinator="driver" | "cluster" | "auto"`` (not to be
confused with where parameters are sampled: ``_coordinator._sampling_placement``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import optuna
from optuna.storages import InMemoryStorage

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._spark import _session
from optuna_spark._spark._job import arrow_task

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_logger = logging.getLogger(__name__)

Coordinator = Literal["driver", "cluster", "auto"]
COORDINATOR_PLACES: tuple[Coordinator, ...] = ("driver", "cluster", "auto")


def check_coordinator(coordinator: object) -> None:
    """Refuse a coordinator placement that does not exist."""
    if coordinator not in COORDINATOR_PLACES:
        raise ValueError(
            f"coordinator must be 'driver', 'cluster' or 'auto', but got {coordinator!r}."
        )


#: Seconds the probe task has to reach the client's service.
PROBE_TIMEOUT = 5.0


def resolve(
    requested: Coordinator,
    spark: SparkSession | None,
    study: optuna.Study,
    host: str | None,
    probed: dict[tuple[int, str], bool],
) -> Literal["driver", "cluster"]:
    """``requested``, with ``"auto"`` decided as documented on ``SparkExecutor``.

    ``probed`` keeps each probe's answer by (session, address): an executor probes once.
    """
    if requested != "auto":
        return requested
    if spark is None or not _session.is_connect(spark):
        return "driver"  # classic sessions: executors reach the driver by Spark's own design
    if isinstance(optuna_adapter.storage_of(study), InMemoryStorage):
        _logger.info(
            "coordinator='auto': the study is in memory, so the coordinator stays in this "
            "process (the cluster could not read the study)."
        )
        return "driver"
    address = host or _session.driver_host(spark)
    key = (id(spark), address)
    if key not in probed:
        probed[key] = executors_reach(spark, address)
    if probed[key]:
        _logger.info(
            "coordinator='auto': a Spark task reached this process at %s; the coordinator "
            "runs here.",
            address,
        )
        return "driver"
    _logger.info(
        "coordinator='auto': no Spark task reached this process at %s within %g s; the "
        "coordinator runs in the cluster.",
        address,
        PROBE_TIMEOUT,
    )
    return "cluster"


def executors_reach(spark: SparkSession, host: str) -> bool:
    """Whether a Spark task can open an authenticated connection to a service here."""
    from optuna_spark._coordinator import StudyServer

    with StudyServer(InMemoryStorage(), host=host) as server:
        endpoint = dataclasses.replace(server.endpoint, connect_timeout=PROBE_TIMEOUT)
        task = arrow_task(_probe_task(endpoint))
        rows = spark.range(0, 1, 1, numPartitions=1).mapInArrow(task, "trials long").collect()
    return bool(rows) and rows[0][0] == 1


def _probe_task(endpoint: Any) -> Any:
    def probe(rows: Iterable[Any]) -> Iterator[int]:
        from optuna_spark.wire import messages as m
        from optuna_spark.wire._client import Connection

        try:
            conn = Connection(endpoint)
            try:
                ok = conn.call(m.Ping()) == "pong"
            finally:
                conn.close()
        except Exception:
            ok = False
        yield 1 if ok else 0

    return probe
