"""What a ``RemoteStorage`` keeps of each study's trials between reads.

Finished trials never change, so they are fetched once. Each read asks the server only for
the trials that were unfinished at the last read and for those newer than the newest finished
one it holds (trial ids grow in every Optuna storage), so a read costs O(trials that changed)
on the wire, not O(all trials).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from collections.abc import Container

from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter

#: Fetches ``(study_id, include, after_trial_id)``: the trials whose id is in ``include``
#: or above ``after_trial_id``.
Fetch = Callable[[int, list[int], int], list[FrozenTrial]]


class _StudyTrials:
    def __init__(self) -> None:
        self.by_number: dict[int, FrozenTrial] = {}
        self.ordered: list[FrozenTrial] = []  # by_number's values by number, kept between reads
        self.unfinished_ids: set[int] = set()
        self.last_finished_id = -1


class TrialCache:
    """Each study's trials as of the last read, refreshed by what changed since."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._studies: dict[int, _StudyTrials] = {}

    def forget(self, study_id: int) -> None:
        with self._lock:
            self._studies.pop(study_id, None)

    def get_all_trials(
        self, study_id: int, deepcopy: bool, states: Container[TrialState] | None
    ) -> list[FrozenTrial]:
        with self._lock:
            entry = self._studies.get(study_id)
            if entry is None:
                entry = self._studies[study_id] = _StudyTrials()
            include, after = sorted(entry.unfinished_ids), entry.last_finished_id
        # The fetch runs without the lock: the cache may be refreshed by two callers at once,
        # and each merge below is correct on its own (finished records never change).
        try:
            fetched = self._fetch(study_id, include, after)
        except KeyError:
            self.forget(study_id)  # deleted elsewhere: its id may come back for a new study
            raise
        with self._lock:
            if self._studies.get(study_id) is not entry:
                # Forgotten meanwhile (deleted): answer this read, keep nothing of it.
                entry = _StudyTrials()
            for trial in fetched:
                self._merge(entry, trial)
            if fetched:
                entry.ordered = sorted(entry.by_number.values(), key=lambda t: t.number)
            trials = entry.ordered
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return [copy_trial(t) for t in trials] if deepcopy else list(trials)

    @staticmethod
    def _merge(entry: _StudyTrials, trial: FrozenTrial) -> None:
        trial_id = optuna_adapter.trial_id_of(trial)
        known = entry.by_number.get(trial.number)
        if known is not None and known.state.is_finished():
            return  # a slower concurrent read's older copy
        entry.by_number[trial.number] = trial
        if trial.state.is_finished():
            entry.unfinished_ids.discard(trial_id)
            entry.last_finished_id = max(entry.last_finished_id, trial_id)
        else:
            entry.unfinished_ids.add(trial_id)


def copy_trial(t: FrozenTrial) -> FrozenTrial:
    """A copy of ``t`` that shares nothing mutable with it, several times cheaper than
    ``copy.deepcopy``: parameter values, datetimes and distributions are not copied, since
    Optuna never changes them in place."""
    return FrozenTrial(
        number=t.number,
        state=t.state,
        value=None,
        values=None if t.values is None else list(t.values),
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
        params=dict(t.params),
        distributions=dict(t.distributions),
        user_attrs=copy.deepcopy(t.user_attrs),
        system_attrs=copy.deepcopy(t.system_attrs),
        intermediate_values=dict(t.intermediate_values),
        trial_id=optuna_adapter.trial_id_of(t),
    )
