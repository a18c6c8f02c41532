"""The progress bar of ``optimize_many``: trials of every study, and studies done; on
request, a line per study below it, with its trials and best value."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from tqdm.auto import tqdm

from optuna_spark._spark._progress import ProgressBar
from optuna_spark._spark._progress import RunView
from optuna_spark._spark._progress import TqdmHandler
from optuna_spark._spark._progress import logs_above_bar
from optuna_spark._spark._progress import restore_logs


class PooledRun(RunView, Protocol):
    """What the bar reads of one study's run: a ``StudyRun``, or the client's view of one
    served in the cluster."""

    @property
    def done(self) -> bool: ...


class PoolView(Protocol):
    """What the bar reads of a pool: a ``RunPool``, or the client's view of one served in
    the cluster."""

    @property
    def runs(self) -> Sequence[PooledRun]: ...

    @property
    def n_trials(self) -> int | None: ...


class PoolProgress:
    """Counts finished, pruned and failed trials over all studies, and the studies done.

    Its total is the sum of the studies' ``n_trials`` when each has one (else it counts
    without a total); Optuna's log lines are written above it while it is shown. With
    ``per_study``, each study also has a bar of its own below it (a :class:`ProgressBar`:
    its trials by state and its best value).
    """

    def __init__(
        self, pool: PoolView, enabled: bool, n_workers: int, *, per_study: bool = False
    ) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._counts: Counter[TrialState] = Counter()
        self._bar: tqdm | None = None
        self._handler: TqdmHandler | None = None
        self._studies: list[ProgressBar] = []
        if not enabled:
            return
        self._bar = tqdm(
            total=pool.n_trials,
            desc=f"{_count(len(pool.runs), 'study', 'studies')} [{n_workers} workers]",
            unit="trial",
            dynamic_ncols=True,
        )
        for run in pool.runs:
            run.listeners.append(self._on_trial)
        if per_study:
            self._studies = [
                ProgressBar(run, True, n_workers, position=i + 1, route_logs=False)
                for i, run in enumerate(pool.runs)
            ]
        self._handler = logs_above_bar()

    def _on_trial(self, trial: FrozenTrial) -> None:
        with self._lock:
            self._counts[trial.state] += 1
            if self._bar is None:
                return
            c = self._counts
            done = sum(run.done for run in self._pool.runs)
            self._bar.set_postfix_str(
                f"studies done={done}/{len(self._pool.runs)} complete={c[TrialState.COMPLETE]} "
                f"pruned={c[TrialState.PRUNED]} failed={c[TrialState.FAIL]}",
                refresh=False,
            )
            self._bar.update(1)

    def close(self) -> None:
        for bar in self._studies:
            bar.close()
        if self._bar is not None:
            self._bar.close()
        if self._handler is not None:
            restore_logs(self._handler)
            self._handler = None


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
