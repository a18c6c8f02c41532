"""``RunPool``: many studies' runs served to one set of workers.

Each worker of a pool asks the pool, not a run, for its next trial; the pool hands it a trial
of the study with the fewest trials in flight (then the fewest started), so that no study is
starved while others run ahead, and each run keeps its own sampler, pruner, callbacks,
``n_trials``, ``timeout`` and ``max_concurrent_trials``. A worker is told to stop only when
no study has anything left to hand out.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from optuna_spark._coordinator._handout import Verdict
from optuna_spark._coordinator._leases import worker_key
from optuna_spark._coordinator._run import StudyRun
from optuna_spark._coordinator._state import Changes
from optuna_spark._coordinator._state import StopReason
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire.spec import WorkerSpec


class RunPool:
    """The runs of many studies, served to one set of workers.

    Serve it with :meth:`StudyServer.add_pool <optuna_spark.remote.StudyServer.add_pool>`
    (every study on the server's storage) and start the workers with :meth:`worker_spec`;
    each worker takes its next trial from any study that has work left, and
    :func:`~optuna_spark.remote.run_worker` takes one objective for all studies or a mapping
    from each study's name to its own.

    Args:
        runs: The runs, not served yet; their change signals become the pool's.

    Example:

        .. testcode::

            import threading

            import optuna
            from optuna_spark.remote import RunPool, StudyRun, StudyServer, run_worker

            storage = optuna.storages.InMemoryStorage()
            studies = [optuna.create_study(study_name=n, storage=storage) for n in "ab"]
            pool = RunPool([StudyRun(s, n_trials=3, max_concurrent_trials=1) for s in studies])
            with StudyServer(storage) as server:
                server.add_pool(pool)
                spec = pool.worker_spec(server.endpoint)
                objective = lambda trial: trial.suggest_float("x", -1, 1) ** 2
                workers = [threading.Thread(target=run_worker, args=(spec, objective))
                           for _ in range(2)]
                for worker in workers:
                    worker.start()
                pool.wait()
                for worker in workers:
                    worker.join()
            assert [len(s.trials) for s in studies] == [3, 3]
    """

    def __init__(self, runs: Sequence[StudyRun]) -> None:
        if not runs:
            raise ValueError("A pool needs at least one run.")
        self.pool_id = secrets.token_hex(8)
        self.runs: tuple[StudyRun, ...] = tuple(runs)
        #: Signalled on every change of any run (state, errors, dismissed workers).
        self.changes = Changes()
        self._wakeups = Changes()
        for run in self.runs:
            run.join_pool(self.changes, self._wakeups)
        self._lock = threading.Lock()
        self._dismissed: set[Any] = set()
        self._turn = 0  # where the tie-break among equal runs starts, moved on every ask

    # -----------------------------------------------------------------------------------------
    # Requests from workers.

    def ask(self, conn_id: int, worker: m.WorkerInfo) -> m.PoolAskReply | None:
        """A trial of the study that most needs one; ``None`` once none has any left.

        A study at its ``max_concurrent_trials``, or whose sampler waits for a running trial,
        is passed over; when every study is in that state the ask waits for a change.
        """
        for run in self.runs:
            run.check_free(conn_id)
        while True:
            seen = self._wakeups.count
            answer = self._try(conn_id, worker)
            if answer is Verdict.STOP:
                self._dismiss(worker, conn_id)
                return None
            if isinstance(answer, m.PoolAskReply):
                return answer
            self._wakeups.wait_past(seen, 1.0)

    def _try(self, conn_id: int, worker: m.WorkerInfo) -> m.PoolAskReply | Verdict:
        stop = True
        for run in self._order(worker.profile):
            answer = run.try_ask(conn_id, worker, dismiss=False)
            if isinstance(answer, m.AskReply):
                return m.PoolAskReply(
                    run.run_id, answer.trial_id, answer.number, answer.study_name
                )
            stop = stop and answer is Verdict.STOP
        return Verdict.STOP if stop else Verdict.WAIT

    def _order(self, profile: str | None) -> list[StudyRun]:
        """The runs still handing out trials, the neediest first: a trial made already (lost,
        to resume, or parked for the worker's ``profile``) before anything new (as in one
        run), then the fewest trials in flight, then the
        fewest started; ties in turn, so that equal studies share the workers evenly."""
        with self._lock:
            turn, self._turn = self._turn, (self._turn + 1) % len(self.runs)
        n = len(self.runs)
        live = [(i, run) for i, run in enumerate(self.runs) if not run.done]
        live.sort(
            key=lambda p: (
                not p[1].has_trials_waiting(profile),
                p[1].n_in_flight,
                p[1].n_started,
                (p[0] - turn) % n,
            )
        )
        return [run for _, run in live]

    def _dismiss(self, worker: m.WorkerInfo, conn_id: int) -> None:
        with self._lock:
            self._dismissed.add(worker_key(worker, conn_id))
        self.changes.notify()

    def worker_spec(
        self,
        endpoint: Endpoint,
        *,
        heartbeat_interval: float = 5.0,
        exit_if_stuck_after: float | None = None,
        gc_after_trial: bool = False,
    ) -> WorkerSpec:
        """What the pool's workers start with: its id, and the sampler and pruner of each
        run that samples on its workers (``sampling="workers"``). The checkpoint settings
        are the first run's (``optimize_many`` gives every run the same)."""
        first = self.runs[0]
        return WorkerSpec(
            endpoint,
            self.pool_id,
            heartbeat_interval=heartbeat_interval,
            exit_if_stuck_after=exit_if_stuck_after,
            gc_after_trial=gc_after_trial,
            checkpoint_store=first.config.checkpoint_store,
            keep_checkpoints=first.config.keep_checkpoints,
            pool=True,
            samplers={
                run.run_id: (run.study.sampler, run.study.pruner)
                for run in self.runs
                if run.sampling == "workers"
            },
        )

    # -----------------------------------------------------------------------------------------
    # What supervising the pool reads and does.

    @property
    def done(self) -> bool:
        """Whether every run is over."""
        return all(run.done for run in self.runs)

    @property
    def n_trials(self) -> int | None:
        """Trials of all studies together, if each study has an ``n_trials``."""
        return total_trials(run.n_trials for run in self.runs)

    @property
    def n_dismissed(self) -> int:
        """How many distinct workers have been told to stop."""
        with self._lock:
            return len(self._dismissed)

    @property
    def errors(self) -> list[tuple[StudyRun, BaseException]]:
        """The runs that failed, with their errors, in the pool's order."""
        return [(run, run.error) for run in self.runs if run.error is not None]

    def stop(self, reason: StopReason = StopReason.INTERRUPTED) -> None:
        for run in self.runs:
            run.stop(reason)

    def fail_running(self, reason: str) -> None:
        for run in self.runs:
            run.fail_running(reason)

    def close(self, detail: str) -> None:
        for run in self.runs:
            run.close(detail)

    def wait(self, timeout: float | None = None) -> bool:
        return self.changes.wait_for(lambda: self.done, timeout)

    def executors(self) -> set[str]:
        """The executors any run's trials run on (what decommissioning watches)."""
        return set().union(*(run.executors() for run in self.runs))

    def decommission(self, executor_id: str) -> None:
        for run in self.runs:
            run.decommission(executor_id)


def total_trials(limits: Iterable[int | None]) -> int | None:
    """The sum of many studies' ``n_trials``; ``None`` when one of them has no limit."""
    listed = list(limits)
    return None if None in listed else sum(n for n in listed if n is not None)
