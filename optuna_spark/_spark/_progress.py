"""A tqdm progress bar for a distributed optimization, fed by finished trials."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from tqdm.auto import tqdm


class RunView(Protocol):
    """What the bar reads of a run: a ``StudyRun``, or the client's view of one served in
    the cluster (``coordinator="cluster"``)."""

    @property
    def study(self) -> optuna.Study: ...

    @property
    def n_trials(self) -> int | None: ...

    @property
    def timeout(self) -> float | None: ...

    @property
    def elapsed(self) -> float: ...

    #: Called with each finished trial.
    listeners: list[Callable[[FrozenTrial], None]]


class TqdmHandler(logging.Handler):
    """Writes log records above the bar (``tqdm.write``), so that Optuna's "Trial N
    finished" lines do not break it: what ``Study.optimize``'s own bar does."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record))
        except Exception:
            self.handleError(record)


def logs_above_bar() -> TqdmHandler:
    """Route Optuna's log lines above the bar instead of through its default handler."""
    handler = TqdmHandler(logging.INFO)
    handler.setFormatter(optuna.logging.create_default_formatter())
    optuna.logging.disable_default_handler()
    logging.getLogger("optuna").addHandler(handler)
    return handler


def restore_logs(handler: TqdmHandler) -> None:
    """Undo :func:`logs_above_bar`."""
    logging.getLogger("optuna").removeHandler(handler)
    optuna.logging.enable_default_handler()


class ProgressBar:
    """Counts finished, pruned and failed trials and shows the best value so far.

    While it is shown, Optuna's log lines are written above it instead of through Optuna's
    default handler, and its clock starts with the first trial (not with Spark's start-up),
    so that its rate and ETA are the trials'.
    """

    def __init__(
        self,
        run: RunView,
        enabled: bool,
        n_workers: int,
        *,
        position: int | None = None,
        route_logs: bool = True,
    ) -> None:
        """``position``: the bar's line (below others, as one of ``optimize_many``'s
        per-study bars, which name only their study); ``route_logs``: whether this bar
        writes Optuna's log lines above itself (the pool's bar does it for all)."""
        self._enabled = enabled
        self._run = run
        self._lock = threading.Lock()
        self._counts = {TrialState.COMPLETE: 0, TrialState.PRUNED: 0, TrialState.FAIL: 0}
        directions = run.study.directions
        self._direction = directions[0] if len(directions) == 1 else None
        self._best: float | None = None
        self._bar: tqdm | None = None
        self._handler: TqdmHandler | None = None
        self._clock_set = False
        # As Study.optimize: a bar of trials, or of seconds when only a timeout is given.
        self._timed = run.n_trials is None and run.timeout is not None
        if enabled:
            name = run.study.study_name
            self._bar = tqdm(
                total=run.timeout if self._timed else run.n_trials,
                desc=name if position else f"{name} [{n_workers} workers]",
                unit="s" if self._timed else "trial",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}" if self._timed else None,
                position=position,
            )
            run.listeners.append(self._on_trial)
            if route_logs:
                self._handler = logs_above_bar()

    def _on_trial(self, trial: FrozenTrial) -> None:
        run = self._run
        with self._lock:
            if trial.state in self._counts:
                self._counts[trial.state] += 1
            if self._direction is not None and trial.state == TrialState.COMPLETE:
                assert trial.values is not None
                value = trial.values[0]
                if not math.isnan(value) and (
                    self._best is None
                    or (self._direction == StudyDirection.MINIMIZE and value < self._best)
                    or (self._direction == StudyDirection.MAXIMIZE and value > self._best)
                ):
                    self._best = value
            if self._bar is not None and not self._clock_set:
                self._start_clock_at(trial)
            if self._bar is not None:
                c = self._counts
                text = (
                    f"done={c[TrialState.COMPLETE]} pruned={c[TrialState.PRUNED]} "
                    f"failed={c[TrialState.FAIL]}"
                )
                if self._best is not None:
                    text += f" best={self._best:.6g}"
                self._bar.set_postfix_str(text, refresh=False)
                if self._timed:
                    assert run.timeout is not None
                    self._bar.n = round(min(run.elapsed, run.timeout), 1)
                    self._bar.refresh()
                else:
                    self._bar.update(1)

    def _start_clock_at(self, trial: FrozenTrial) -> None:
        """Restart the bar's clock at the first finished trial's start, so that Spark's
        start-up does not count in the rate and ETA."""
        self._clock_set = True
        if trial.datetime_start is None or trial.datetime_complete is None or self._bar is None:
            return
        ran = max(0.0, (trial.datetime_complete - trial.datetime_start).total_seconds())
        self._bar.reset(total=self._bar.total)  # n back to 0 (this trial is counted next)
        # tqdm keeps its clock in start_t and last_print_t (``time.time()``).
        self._bar.start_t = self._bar.last_print_t = time.time() - ran

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._handler is not None:
            restore_logs(self._handler)
            self._handler = None
