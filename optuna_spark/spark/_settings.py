"""The executor's settings for each run, wherever the run lives (driver or cluster)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_spark.coordinator._placement import Sampling


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

    @property
    def wind_down(self) -> float:
        """Seconds workers get to end their tasks after the study is over."""
        return max(30.0, 3 * self.heartbeat_interval)

    @property
    def exit_if_stuck_after(self) -> float | None:
        """When a worker whose trial ran out of time ends its process (with trial_timeout)."""
        return self.stuck_grace if self.trial_timeout else None

    def run_kwargs(
        self,
        n_trials: int | None,
        timeout: float | None,
        callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] | None,
    ) -> dict[str, Any]:
        """``StudyRun``'s keyword arguments for one ``optimize`` call."""
        return {
            "n_trials": n_trials,
            "timeout": timeout,
            "callbacks": list(callbacks or ()),
            "heartbeat_grace": self.heartbeat_grace,
            "trial_timeout": self.trial_timeout,
            "stop_running_trials": self.stop_running_trials,
            "retry_lost_trials": self.retry_lost_trials,
            "sampling": self.sampling,
            "log_artifact_store": self.log_artifact_store,
        }
