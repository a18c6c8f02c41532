"""The study callbacks receive: the run's study, whose ``stop()`` stops the run."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter


class CallbackStudy(optuna.Study):
    """``study`` (same storage, sampler and pruner) for ``callback(study, frozen_trial)``.

    ``stop()`` stops the distributed run (running trials are told to stop, as a callback's
    ``study.stop()`` does in ``Study.optimize``), without going through the study's stop
    flag, which the coordinator reads as a sampler that has nothing left to hand out.
    """

    def __init__(self, study: optuna.Study, stop_run: Callable[[], None]) -> None:
        super().__init__(
            study_name=study.study_name,
            storage=optuna_adapter.storage_of(study),
            sampler=study.sampler,
            pruner=study.pruner,
        )
        self._stop_run = stop_run

    def stop(self) -> None:
        """Stop the optimization after the running trials, as ``Study.stop`` does."""
        self._stop_run()
