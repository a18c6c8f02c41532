"""The trial service: the runs open on a server, and the routes their workers call."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING
from typing import Any

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._coordinator._pool import RunPool
from optuna_spark._coordinator._run import StudyRun
from optuna_spark._coordinator._trial_methods import TRIAL_METHODS
from optuna_spark.wire import messages as m

if TYPE_CHECKING:
    from optuna_spark._coordinator._server import StudyServer

_logger = logging.getLogger(__name__)


class RunService:
    """Serves the studies being optimized on ``server``: a server extension.

    It registers a route per worker request; each decodes nothing itself (the wire schema has
    validated the request), finds the run and hands the request to the run.
    """

    def __init__(self, server: StudyServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._runs: dict[str, StudyRun] = {}
        self._pools: dict[str, RunPool] = {}
        routes: dict[type[m.Request], Any] = {
            m.Ask: lambda run, r, c: run.ask(c, r.worker),
            m.Report: lambda run, r, c: run.report(c, r.trial_id, r.value, r.step),
            m.ShouldPrune: lambda run, r, c: run.should_prune(c, r.trial_id),
            m.Heartbeat: lambda run, r, c: run.heartbeat(c, r.trial_ids),
            m.TellValues: lambda run, r, c: run.tell(c, r),
            m.TellPruned: lambda run, r, c: run.tell(c, r),
            m.TellFailed: lambda run, r, c: run.tell(c, r),
            m.TellHandBack: lambda run, r, c: run.hand_back(c, r.trial_id, r.step),
            m.StopStudy: lambda run, r, c: run.stop_study(c),
        }
        routes.update({t: lambda run, r, c: run.call_trial(c, r) for t in TRIAL_METHODS})
        for request_type, call in routes.items():
            server.register(request_type, self._route(call))
        server.register(m.AskPool, self._ask_pool)
        server.register(m.TrialOutput, self._trial_output)
        server.on_connection_closed(self._connection_closed)
        server.on_tick(self._tick)

    def add(self, run: StudyRun) -> None:
        if optuna_adapter.storage_of(run.study) is not self._server.storage:
            raise ValueError(
                "The study's storage is not the storage this server serves; create the server "
                "with the storage the study was created with."
            )
        run.start()
        with self._lock:
            self._runs[run.run_id] = run

    def remove(self, run: StudyRun) -> None:
        with self._lock:
            self._runs.pop(run.run_id, None)

    def add_pool(self, pool: RunPool) -> None:
        """Serve every run of ``pool``, and the asks of the pool's workers."""
        for run in pool.runs:
            self.add(run)
        with self._lock:
            self._pools[pool.pool_id] = pool

    def remove_pool(self, pool: RunPool) -> None:
        with self._lock:
            self._pools.pop(pool.pool_id, None)
        for run in pool.runs:
            self.remove(run)

    def _ask_pool(self, request: m.AskPool, conn_id: int) -> m.PoolAskReply | None:
        with self._lock:
            pool = self._pools.get(request.run_id)
        if pool is None:
            raise KeyError(f"No pool of runs {request.run_id!r} is open on this server.")
        return pool.ask(conn_id, request.worker)

    def _get(self, run_id: str) -> StudyRun:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise KeyError(f"No optimization run {run_id!r} is open on this server.")
        return run

    def _all(self) -> list[StudyRun]:
        with self._lock:
            return list(self._runs.values())

    def _route(self, call: Any) -> Any:
        def handler(request: m.RunRequest, conn_id: int) -> Any:
            return call(self._get(request.run_id), request, conn_id)

        return handler

    def check_writer(self, conn_id: int, trial_id: int) -> bool:
        """Whether a run here runs ``trial_id``; raises if one does and ``conn_id`` does not
        hold it (the storage routes ask before each write to a trial)."""
        return any(run.check_writer(conn_id, trial_id) for run in self._all())

    def _trial_output(self, request: m.TrialOutput, conn_id: int) -> None:
        """Never an error, even for a run that has ended: nobody waits for the answer."""
        with self._lock:
            run = self._runs.get(request.run_id)
        if run is not None:
            run.trial_output(conn_id, request.trial_id, request.text)

    def _connection_closed(self, conn_id: int) -> None:
        for run in self._all():
            run.connection_lost(conn_id)

    def _tick(self) -> None:
        for run in self._all():
            try:
                run.tick()
            except Exception:
                _logger.exception("Checking the running trials failed.")
