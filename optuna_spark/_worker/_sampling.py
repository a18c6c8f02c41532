"""Sampling on the worker (``sampling="workers"``): a copy of the study's sampler per worker."""

from __future__ import annotations

import copy

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._storages._remote import RemoteStorage
from optuna_spark._worker._trial import WorkerStudy
from optuna_spark.wire._client import Connection


class LocalSampling:
    """Makes this worker's ``optuna.Trial`` for each trial the driver hands out.

    The driver creates and numbers the trial (so ``n_trials`` stays exact and enqueued trials
    are handed out once); this worker's own copy of the sampler picks its parameters, reading
    the study through :class:`~optuna_spark.RemoteStorage`. The copy is reseeded
    (``BaseSampler.reseed_rng``) so that no two workers draw the same sequence; samplers with
    a constant liar (TPE's default) see the other workers' running trials and their
    parameters, which live on the driver.
    """

    def __init__(
        self,
        conn: Connection,
        run_id: str,
        storage: RemoteStorage,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner | None,
    ) -> None:
        self._conn = conn
        self._run_id = run_id
        self._storage = storage
        self._sampler = copy.deepcopy(sampler)  # threads of one process share one spec
        self._sampler.reseed_rng()
        self._pruner = copy.deepcopy(pruner)
        self._study: WorkerStudy | None = None

    def study(self, study_name: str) -> WorkerStudy:
        """This worker's copy of the study, with its own sampler."""
        if self._study is None or self._study.study_name != study_name:
            self._study = WorkerStudy(
                self._conn, self._run_id, study_name, self._storage, self._sampler, self._pruner
            )
        return self._study

    def trial(self, study_name: str, trial_id: int) -> optuna.Trial:
        """The local trial for ``trial_id``; its sampler sees the study as it is now."""
        study = self.study(study_name)
        optuna_adapter.forget_cached_trials(study)  # as Study.ask does for each trial
        return optuna.Trial(study, trial_id)
