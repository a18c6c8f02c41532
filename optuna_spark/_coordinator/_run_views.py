"""The read-only views of a :class:`~optuna_spark.remote.StudyRun`: its config, counts and
state, read by the executor's progress bar and supervision and by users of
``optuna_spark.remote``."""

from __future__ import annotations

import threading
from typing import Any

import optuna

from optuna_spark._coordinator._handout import Handout
from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark._coordinator._recorder import Recorder
from optuna_spark._coordinator._state import Changes
from optuna_spark._coordinator._state import Phase
from optuna_spark._coordinator._state import RunState
from optuna_spark._coordinator._state import StopReason
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire.spec import RunConfig
from optuna_spark.wire.spec import Sampling
from optuna_spark.wire.spec import WorkerSpec


class RunViews:
    """What a run tells about itself, and what its workers start with (the attributes are
    set by the run)."""

    run_id: str
    study: optuna.Study
    config: RunConfig
    _handout: Handout
    _recorder: Recorder
    _leases: LeaseTable
    _state: RunState
    _dismissed: set[Any]
    _lock: threading.RLock
    _wakeups: Changes
    changes: Changes

    @property
    def n_trials(self) -> int | None:
        return self.config.n_trials

    @property
    def timeout(self) -> float | None:
        return self.config.timeout

    @property
    def stop_running_trials(self) -> bool:
        return self.config.stop_running_trials

    @property
    def sampling(self) -> Sampling:
        return self.config.sampling

    @property
    def n_started(self) -> int:
        return self._handout.n_started

    @property
    def n_finished(self) -> int:
        return self._recorder.n_finished

    @property
    def n_running(self) -> int:
        return self._leases.n_running

    @property
    def wakeups(self) -> Changes:
        """Signalled when an ask that was told to wait may get something now."""
        return self._wakeups

    @property
    def n_in_flight(self) -> int:
        """Trials this run has handed out or is making that have not ended."""
        with self._lock:
            return self._leases.n_running + self._handout.n_making

    def join_pool(self, changes: Changes, wakeups: Changes) -> None:
        """Signal ``changes`` and ``wakeups``, shared by the runs of one pool, instead of
        this run's own (before the run is served): whoever waits on the pool wakes when any
        of its runs changes."""
        self.changes = changes
        self._wakeups = wakeups

    def has_trials_waiting(self, profile: str | None = None) -> bool:
        """Whether a trial made already waits for a worker of ``profile``: one to resume (its
        worker lost) or, with resources chosen per trial, one parked for that profile."""
        with self._lock:
            leases = self._leases
            waiting = [leases.lease_of(tid) for tid in leases.suspended_ids()]
            waiting += [leases.lease_of(tid) for tid in leases.parked_ids()]
            return any(lease is not None and lease.profile in (None, profile) for lease in waiting)

    @property
    def n_dismissed(self) -> int:
        """How many distinct workers (Spark partitions) have been told to stop."""
        return len(self._dismissed)

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def stop_reason(self) -> StopReason | None:
        return self._state.reason

    @property
    def error(self) -> BaseException | None:
        return self._state.error

    @property
    def elapsed(self) -> float:
        return self._handout.elapsed

    def executors(self) -> set[str]:
        """The executors running this run's trials (as their workers described them)."""
        with self._lock:
            return self._leases.executors()

    @property
    def _may_resume(self) -> bool:
        """Whether a running trial may still come back to resume (its worker lost)."""
        return bool(self.config.resume_lost_trials) and self._leases.n_running > 0

    @property
    def done(self) -> bool:
        return self._state.phase is Phase.DONE

    def worker_spec(
        self,
        endpoint: Endpoint,
        *,
        heartbeat_interval: float = 5.0,
        exit_if_stuck_after: float | None = None,
        gc_after_trial: bool = False,
    ) -> WorkerSpec:
        """What workers of this run are started with (see :func:`run_worker`).

        With ``sampling="workers"`` it carries the study's sampler and pruner, which each
        worker copies; it must then be shipped as Python objects (pickled, as Spark does).
        """
        return WorkerSpec.for_run(
            endpoint,
            self.run_id,
            sampling=self.sampling,
            sampler=self.study.sampler,
            pruner=self.study.pruner,
            heartbeat_interval=heartbeat_interval,
            exit_if_stuck_after=exit_if_stuck_after,
            gc_after_trial=gc_after_trial,
            checkpoint_store=self.config.checkpoint_store,
            keep_checkpoints=self.config.keep_checkpoints,
        )
