"""A tqdm progress bar for a distributed optimization, fed by finished trials."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from tqdm.auto import tqdm

from optuna_spark.coordinator._run import StudyRun

if TYPE_CHECKING:
    from optuna_spark.spark._cluster import ClusterRunView


class ProgressBar:
    """Counts finished, pruned and failed trials and shows the best value so far."""

    def __init__(self, run: StudyRun | ClusterRunView, enabled: bool, n_workers: int) -> None:
        self._enabled = enabled
        self._run = run
        self._lock = threading.Lock()
        self._counts = {TrialState.COMPLETE: 0, TrialState.PRUNED: 0, TrialState.FAIL: 0}
        directions = run.study.directions
        self._direction = directions[0] if len(directions) == 1 else None
        self._best: float | None = None
        self._bar: tqdm | None = None
        # As Study.optimize: a bar of trials, or of seconds when only a timeout is given.
        self._timed = run.n_trials is None and run.timeout is not None
        if enabled:
            self._bar = tqdm(
                total=run.timeout if self._timed else run.n_trials,
                desc=f"{run.study.study_name} [{n_workers} workers]",
                unit="s" if self._timed else "trial",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}" if self._timed else None,
            )
            run.listeners.append(self._on_trial)

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

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
