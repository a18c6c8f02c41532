"""The executor's settings for each run, wherever the run lives (driver or cluster).

One place builds what both coordinator placements need from them: the run's
:class:`~optuna_spark.wire.spec.RunConfig`, the server's tuning and the number of workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from optuna_spark.wire.spec import Callback
from optuna_spark.wire.spec import RunConfig
from optuna_spark.wire.spec import Sampling


@dataclasses.dataclass(frozen=True)
class ServerTuning:
    """How the run's server watches its connections, from the workers' heartbeat interval.

    Attributes:
        tick_interval: Seconds between the server's checks of running trials (lost workers,
            time limits): a quarter of the heartbeat interval, at most a quarter second.
        idle_timeout: Seconds a silent connection is kept: longer than several heartbeats.
    """

    tick_interval: float
    idle_timeout: float

    @classmethod
    def for_heartbeat(cls, heartbeat_interval: float) -> ServerTuning:
        return cls(min(1.0, heartbeat_interval) / 4, max(300.0, 4 * heartbeat_interval))


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What ``SparkExecutor`` was given that shapes each run (see its arguments)."""

    heartbeat_interval: float
    heartbeat_grace: float
    trial_timeout: float | None
    stuck_grace: float
    stop_running_trials: bool
    retry_lost_trials: bool
    sampling: Sampling
    log_artifact_store: Any
    resume_lost_trials: int = 0
    checkpoint_store: Any = None
    keep_checkpoints: bool = False
    storage_grace: float = 60.0

    @property
    def wind_down(self) -> float:
        """Seconds workers get to end their tasks after the study is over."""
        return max(30.0, 3 * self.heartbeat_interval)

    @property
    def exit_if_stuck_after(self) -> float | None:
        """When a worker whose trial ran out of time ends its process (with trial_timeout)."""
        return self.stuck_grace if self.trial_timeout else None

    @property
    def server(self) -> ServerTuning:
        return ServerTuning.for_heartbeat(self.heartbeat_interval)

    def run_config(
        self,
        n_trials: int | None,
        timeout: float | None,
        callbacks: Iterable[Callback] | None,
    ) -> RunConfig:
        """The run of one ``optimize`` call (checked now: a bad value fails before Spark)."""
        return RunConfig.of(
            callbacks,
            n_trials=n_trials,
            timeout=timeout,
            heartbeat_grace=self.heartbeat_grace,
            trial_timeout=self.trial_timeout,
            stop_running_trials=self.stop_running_trials,
            retry_lost_trials=self.retry_lost_trials,
            resume_lost_trials=self.resume_lost_trials,
            checkpoint_store=self.checkpoint_store,
            keep_checkpoints=self.keep_checkpoints,
            storage_grace=self.storage_grace,
            sampling=self.sampling,
            log_artifact_store=self.log_artifact_store,
        )


def n_workers_for(requested: int | None, slots: int, n_trials: int | None) -> int:
    """Workers of a run: ``requested``, else the ``slots`` Spark offers, never more than
    ``n_trials`` (an idle worker would only be told to stop), at least one."""
    n_workers = requested or slots
    if n_trials is not None:
        n_workers = min(n_workers, n_trials)
    return max(1, n_workers)


@dataclasses.dataclass(frozen=True)
class CallOptions:
    """What one ``optimize`` call gives either coordinator placement besides the run's
    :class:`~optuna_spark.wire.spec.RunConfig` (see ``SparkExecutor``'s arguments; the
    cluster placement refuses ``service_host`` and TLS before it gets here)."""

    settings: RunSettings
    n_workers: int | None
    profile: Any
    service_host: str | None
    service_port: int
    tls: tuple[str | None, str | None]
    tls_server_hostname: str | None
    log_to_driver: bool
    gc_after_trial: bool
    show_progress_bar: bool | str  # "studies": optimize_many's bar and one per study
    #: With ``TrialResources``: each profile's ``Stage`` (workers, ``ResourceProfile``).
    stages: Mapping[str, Any] | None = None

    @property
    def stages_workers(self) -> int | None:
        """The workers of every profile's stage, with ``TrialResources``."""
        return None if self.stages is None else sum(s.n_workers for s in self.stages.values())
