"""The look at a study that a driver's ``availability`` call made, kept for the ask that follows.

A driver asks ``sampler.availability(study)`` and then ``study.ask()`` in the same thread, and
``AblationSampler.before_trial`` needs what ``availability`` just read. :class:`ScanCache`
keeps each thread's last look, and hands it back once, to the trial created right after it
(its number is the look's ``n_trials``: no other trial was created meanwhile), while nothing
of this sampler changed since (:meth:`ScanCache.changed`: a trial took a pair or finished).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import optuna
from optuna.storages import BaseStorage

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.ablation._pairs import StudyScan
from optuna_spark.ablation._plan import Plan


@dataclasses.dataclass(frozen=True)
class _Kept:
    """A look at one study, and the sampler's generation when it was made."""

    storage: BaseStorage
    study_id: int
    generation: int
    scan: StudyScan
    plan: Plan


class ScanCache:
    """Each thread's last look at a study, valid for the next new trial only.

    The owner calls every method under its own lock.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._generation = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (ScanCache, ())  # a copy of the sampler starts with no look

    def changed(self) -> None:
        """Forget every thread's look: a trial took a pair or finished."""
        self._generation += 1

    def keep(self, study: optuna.Study, scan: StudyScan, plan: Plan) -> None:
        """Keep this thread's look at ``study`` for the trial it asks for next."""
        self._local.kept = _Kept(
            optuna_adapter.storage_of(study),
            optuna_adapter.study_id_of(study),
            self._generation,
            scan,
            plan,
        )

    def take(self, study: optuna.Study, number: int) -> tuple[StudyScan, Plan] | None:
        """This thread's look, if it still holds for the new trial ``number`` of ``study``.

        Args:
            study: The study the trial belongs to.
            number: The trial's number.

        Returns:
            The kept scan and plan, or ``None`` when there is none or it may be stale: another
            study, a change since, a trial created meanwhile, or a trial from the queue.
        """
        kept: _Kept | None = getattr(self._local, "kept", None)
        self._local.kept = None  # good for one trial at most
        if (
            kept is None
            or kept.generation != self._generation
            or kept.storage is not optuna_adapter.storage_of(study)
            or kept.study_id != optuna_adapter.study_id_of(study)
            or kept.scan.n_waiting  # the trial may come from the queue: look again
            or number != kept.scan.n_trials
        ):
            return None
        return kept.scan, kept.plan
