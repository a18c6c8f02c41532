"""The storage as a run's sampler study sees it: every trial the run creates is born with the
run's id, and every call rides out a storage outage (``_patience``).

``study.ask()`` creates a trial RUNNING, and only then could the run write which run holds it;
a driver killed between the two would leave a RUNNING trial that no recovery can attribute,
and that TPE's constant liar would avoid forever. Through :class:`RunStorage` the trial's
creation itself carries the run's id (``optuna_spark:run``), in the one write the storage
commits.
"""

from __future__ import annotations

import datetime
from typing import Any

from optuna.storages import BaseStorage
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark._coordinator._attrs import ATTR_RUN
from optuna_spark._coordinator._patience import StoragePatience


def storage_for_asks(
    storage: BaseStorage, run_id: str, patience: StoragePatience | None = None
) -> BaseStorage:
    """What run ``run_id`` asks through: a :class:`RunStorage` over a persistent storage; an
    in-memory one as it is (it dies with the driver: nothing to attribute after a crash, its
    copy of every template would cost each ask, and it has no outages)."""
    if isinstance(storage, InMemoryStorage):
        return storage
    return RunStorage(storage, run_id, patience)


class RunStorage(BaseStorage):
    """``inner`` (any Optuna storage), but for :meth:`create_new_trial`, each call retried
    through ``patience`` while the storage fails transiently.

    Every other method of ``BaseStorage`` is the inner storage's own (an RDB storage keeps its
    faster ``get_n_trials`` and ``get_best_trial``).

    Args:
        inner: The study's storage.
        run_id: The run whose trials this storage creates.
        patience: How storage outages are ridden out (``None``: not at all).
    """

    def __init__(
        self, inner: BaseStorage, run_id: str, patience: StoragePatience | None = None
    ) -> None:
        self._inner = inner
        self._run_id = run_id
        self._patience = patience or StoragePatience(0)

    @property
    def inner(self) -> BaseStorage:
        return self._inner

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """A new RUNNING trial with the run's id among its system attributes (a trial made
        from a template is the template's: ``study.ask()`` never passes one)."""
        if template_trial is None:
            template_trial = FrozenTrial(
                number=-1,
                state=TrialState.RUNNING,
                value=None,
                datetime_start=datetime.datetime.now(),
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs={},
                system_attrs={ATTR_RUN: self._run_id},
                intermediate_values={},
                trial_id=-1,
            )
        return self._patience.call(self._inner.create_new_trial, study_id, template_trial)

    # Everything else is the inner storage's.

    def create_new_study(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.create_new_study, *args, **kwargs)

    def delete_study(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.delete_study, *args, **kwargs)

    def get_all_studies(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_all_studies, *args, **kwargs)

    def get_all_trials(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_all_trials, *args, **kwargs)

    def get_study_directions(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_study_directions, *args, **kwargs)

    def get_study_id_from_name(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_study_id_from_name, *args, **kwargs)

    def get_study_name_from_id(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_study_name_from_id, *args, **kwargs)

    def get_study_system_attrs(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_study_system_attrs, *args, **kwargs)

    def get_study_user_attrs(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_study_user_attrs, *args, **kwargs)

    def get_trial(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_trial, *args, **kwargs)

    def set_study_system_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_study_system_attr, *args, **kwargs)

    def set_study_user_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_study_user_attr, *args, **kwargs)

    def set_trial_intermediate_value(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_trial_intermediate_value, *args, **kwargs)

    def set_trial_param(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_trial_param, *args, **kwargs)

    def set_trial_state_values(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_trial_state_values, *args, **kwargs)

    def set_trial_system_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_trial_system_attr, *args, **kwargs)

    def set_trial_user_attr(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.set_trial_user_attr, *args, **kwargs)

    def get_n_trials(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_n_trials, *args, **kwargs)

    def get_best_trial(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.get_best_trial, *args, **kwargs)

    def remove_session(self, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(self._inner.remove_session, *args, **kwargs)
