"""``RemoteTrial``: the worker's ``optuna.Trial``, executed by the driver."""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import overload

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalChoiceType
from optuna.distributions import json_to_distribution

from optuna_spark._storages._remote import RemoteStorage
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection

if TYPE_CHECKING:
    from optuna_spark._worker._sampling import LocalSampling


class RemoteTrial(optuna.Trial):
    """A trial whose every decision is made by the driver's real ``optuna.Trial``.

    Objectives receive it instead of ``optuna.Trial`` when they run on a worker; it behaves the
    same: ``suggest_*`` returns what the driver's sampler picked, ``report`` records the value
    on the driver, ``should_prune`` is answered by the driver's pruner (which sees every
    worker's reports), and ``study`` is the study itself, read through
    :class:`~optuna_spark.RemoteStorage`.

    ``report`` does not wait for the driver: its reply is read by the next call, so a
    ``report`` followed by ``should_prune`` costs one round trip.

    With ``sampling="workers"`` it wraps an ``optuna.Trial`` of this worker's own copy of the
    study (and sampler), made at the first suggestion: ``suggest_*``, ``params`` and
    ``distributions`` are then answered here, and everything else still by the driver.

    It is an ``optuna.Trial`` (every method of which it implements), so that what Optuna
    accepts only from one works with it too: ``optuna.artifacts.upload_artifact(...,
    study_or_trial=trial)`` records the artifact on the trial through :attr:`storage`.
    """

    def __init__(
        self,
        conn: Connection,
        run_id: str,
        trial_id: int,
        number: int,
        study_name: str,
        storage: RemoteStorage | None = None,
        sampling: LocalSampling | None = None,
        checkpoint_store: Any = None,
    ) -> None:
        # optuna.Trial.__init__ is not run: it would read the trial and run the sampler here.
        self._conn = conn
        self._run_id = run_id
        self._trial_id = trial_id
        self._number = number
        self._study_name = study_name
        self._storage = storage
        self._sampling = sampling
        self._local: optuna.Trial | None = None
        self._study: optuna.Study | None = None
        self._checkpoint_store = checkpoint_store
        self._save_requested = False

    def __repr__(self) -> str:
        return f"RemoteTrial(number={self._number})"

    def _own(self) -> optuna.Trial | None:
        """This worker's own trial when it samples by itself, else ``None``."""
        if self._local is None and self._sampling is not None:
            self._local = self._sampling.trial(self._study_name, self._trial_id)
        return self._local

    def _running(self) -> m.RunningTrialData:
        data: m.RunningTrialData = self._conn.call(m.GetRunningTrial(self._run_id, self._trial_id))
        return data

    # -----------------------------------------------------------------------------------------
    # Suggestions.

    def suggest_float(
        self,
        name: str,
        low: float,
        high: float,
        *,
        step: float | None = None,
        log: bool = False,
    ) -> float:
        if (local := self._own()) is not None:
            return local.suggest_float(name, low, high, step=step, log=log)
        step = None if step is None else float(step)
        request = m.SuggestFloat(
            self._run_id, self._trial_id, name, float(low), float(high), step, bool(log)
        )
        return float(self._conn.call(request))

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def suggest_discrete_uniform(self, name: str, low: float, high: float, q: float) -> float:
        return self.suggest_float(name, low, high, step=q)

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if (local := self._own()) is not None:
            return local.suggest_int(name, low, high, step=step, log=log)
        request = m.SuggestInt(
            self._run_id,
            self._trial_id,
            name,
            operator.index(low),
            operator.index(high),
            operator.index(step),
            bool(log),
        )
        return int(self._conn.call(request))

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[None]) -> None: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[bool]) -> bool: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[int]) -> int: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[float]) -> float: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[str]) -> str: ...

    @overload
    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType: ...

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        if (local := self._own()) is not None:
            return local.suggest_categorical(name, choices)
        wire = list(choices)
        for choice in wire:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise TypeError(
                    f"Categorical choices sent to the driver must be None, bool, int, float or "
                    f"str, but {name!r} has {choice!r} of type {type(choice).__name__}. Suggest "
                    "an index or a name and map it to the object in the objective."
                )
        value = self._conn.call(m.SuggestCategorical(self._run_id, self._trial_id, name, wire))
        # Hand back the caller's own object (for example a float 1.0 and not an int 1).
        for choice in choices:
            if choice == value and type(choice) is type(value):
                return choice
        return value  # type: ignore[no-any-return]

    # -----------------------------------------------------------------------------------------
    # Pruning.

    def report(self, value: float, step: int) -> None:
        value = _as_float(value)
        try:
            step = operator.index(step)
        except TypeError:
            raise TypeError(
                f"The `step` argument is of type '{type(step)}' but supposed to be an int."
            ) from None
        # Fire and forget: the driver records reports in order; an error (the trial is no
        # longer running) is raised by the next call. ``should_prune`` asks the pruner only
        # when the objective asks, exactly as in-process (some pruners record state then).
        self._conn.send(m.Report(self._run_id, self._trial_id, value, step))

    def should_prune(self) -> bool:
        reply: m.PruneReply = self._conn.call(m.ShouldPrune(self._run_id, self._trial_id))
        if reply.save:
            self.request_save()
        return reply.prune

    def set_checkpoint(self, record: dict[str, Any]) -> None:
        """Record the trial's latest checkpoint on the driver (refused unless this worker
        still holds the trial)."""
        self._conn.call(m.SetCheckpoint(self._run_id, self._trial_id, record))

    @property
    def save_requested(self) -> bool:
        """Whether the trial's executor is being decommissioned: the objective's next
        ``optuna_spark.checkpoint.save`` hands the trial back to resume elsewhere."""
        return self._save_requested

    def request_save(self) -> None:
        """Ask the objective to save and hand the trial back (the driver said so)."""
        self._save_requested = True

    # -----------------------------------------------------------------------------------------
    # Attributes.

    def set_user_attr(self, key: str, value: Any) -> None:
        self._conn.call(m.SetUserAttr(self._run_id, self._trial_id, key, value))

    def set_constraint(self, key: str, value: float) -> None:
        value = _as_float(value)
        if math.isnan(value):
            raise ValueError(f"Attempted to set a constraint for {key!r}, but NaN is not allowed.")
        self._conn.call(m.SetConstraint(self._run_id, self._trial_id, key, value))

    @property
    def constraints(self) -> dict[str, float]:
        return dict(self._running().constraints)

    @property
    def params(self) -> dict[str, Any]:
        if (local := self._own()) is not None:
            return local.params
        return dict(self._running().params)

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        if (local := self._own()) is not None:
            return local.distributions
        return {k: json_to_distribution(v) for k, v in self._running().distributions.items()}

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._running().user_attrs)

    @property
    def datetime_start(self) -> datetime.datetime | None:
        return self._running().datetime_start

    @property
    def number(self) -> int:
        return self._number

    @property
    def storage(self) -> RemoteStorage:  # type: ignore[override]
        """The study's storage, through the driver (``optuna.Trial.storage``)."""
        if self._storage is None:
            self._storage = RemoteStorage.from_endpoint(
                self._conn.endpoint, trial_writes=self._conn
            )
        return self._storage

    @property
    def checkpoint_store(self) -> Any:
        """The Optuna artifact store the run keeps checkpoints in (``None``: it has none);
        :mod:`optuna_spark.checkpoint` uses it."""
        return self._checkpoint_store

    @property
    def relative_params(self) -> dict[str, Any]:
        """The sampler's relative parameters; known here only with ``sampling="workers"``
        (with ``"driver"`` they stay on the driver, where the sampler runs)."""
        local = self._own()
        return {} if local is None else local.relative_params

    @property
    def study(self) -> optuna.Study:  # type: ignore[override]
        """The study, read and written through :class:`~optuna_spark.RemoteStorage`."""
        if self._sampling is not None:
            return self._sampling.study(self._study_name)
        if self._study is None:
            self._study = WorkerStudy(self._conn, self._run_id, self._study_name, self.storage)
        return self._study


def _as_float(value: Any) -> float:
    """``float(value)``, with Optuna's own message when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"The `value` argument is of type '{type(value)}' but supposed to be a float."
        ) from None


class WorkerStudy(optuna.Study):
    """The study as seen from a worker; ``stop()`` asks the driver to stop the run.

    Its sampler is the default one, never used, unless the worker samples by itself
    (``sampling="workers"``); its pruner then only shapes what the sampler sees (Hyperband's
    brackets), as in ``optuna.Study``: ``should_prune`` is always answered by the driver.
    """

    def __init__(
        self,
        conn: Connection,
        run_id: str,
        study_name: str,
        storage: RemoteStorage,
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        super().__init__(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        self._conn = conn
        self._run_id = run_id

    def stop(self) -> None:
        """Stop the driver's optimization after the running trials, as ``Study.stop``."""
        self._conn.call(m.StopStudy(self._run_id))
