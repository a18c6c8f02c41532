"""The study a run's sampler and callbacks see: the user's study, with ``stop()`` routed."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage

from optuna_spark import _optuna_adapter as optuna_adapter


class RunStudy(optuna.Study):
    """``study`` (same storage, sampler and pruner) whose ``stop()`` calls ``on_stop``.

    A run asks and tells through one of these, so that a sampler's ``study.stop()`` (a
    ``GridSampler`` that has handed out its last point) reaches the run as "nothing left to
    hand out", and gives callbacks another, so that their ``study.stop()`` stops the run
    (running trials are told to stop, as in ``Study.optimize``). Neither goes through the
    study's own stop flag. ``storage`` is the study's own unless given (the run's asks go
    through a :class:`~._run_storage.RunStorage`).
    """

    def __init__(
        self,
        study: optuna.Study,
        on_stop: Callable[[], None],
        storage: BaseStorage | None = None,
    ) -> None:
        super().__init__(
            study_name=study.study_name,
            storage=storage if storage is not None else optuna_adapter.storage_of(study),
            sampler=study.sampler,
            pruner=study.pruner,
        )
        self._on_stop = on_stop

    def stop(self) -> None:
        """Stop the optimization after the running trials, as ``Study.stop`` does."""
        self._on_stop()
