"""The arguments of ``SparkExecutor.optimize_many``, checked and made into one run per study."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

import optuna

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.wire.spec import RunConfig

Objective = Callable[[Any], Any]
T = TypeVar("T")


def split_studies(
    studies: Sequence[optuna.Study | tuple[optuna.Study, Objective]], func: Objective | None
) -> tuple[list[optuna.Study], dict[str, Objective]]:
    """The studies, and each one's objective by study name."""
    if isinstance(studies, (optuna.Study, str, bytes)) or not isinstance(studies, Sequence):
        raise TypeError(
            "studies must be a sequence of studies (with one objective, func, for all) or of "
            f"(study, objective) pairs, but got {type(studies).__name__}."
        )
    if not studies:
        raise ValueError("studies is empty: give at least one study to optimize.")
    pairs: list[tuple[optuna.Study, Objective]] = []
    for entry in studies:
        if isinstance(entry, optuna.Study) and func is not None:
            pairs.append((entry, func))
        elif isinstance(entry, tuple) and len(entry) == 2 and func is None:
            study, objective = entry
            if not isinstance(study, optuna.Study) or not callable(objective):
                raise TypeError(f"Each pair must be (study, objective), but got {entry!r}.")
            pairs.append((study, objective))
        else:
            raise TypeError(
                "Give either studies with one objective (optimize_many(studies, func)) or "
                "(study, objective) pairs without func, not a mix; got "
                f"{type(entry).__name__} with func={'given' if func else 'None'}."
            )
    names = [study.study_name for study, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"Each study must appear once, but these appear more often: {twice}.")
    return [study for study, _ in pairs], dict(zip(names, (f for _, f in pairs), strict=True))


def per_study(what: str, value: T | Mapping[str, T], names: Sequence[str]) -> dict[str, T]:
    """``value`` for every study: the same for all, or a mapping by study name (a study it
    does not name gets ``None``: no limit)."""
    if not isinstance(value, Mapping):
        return dict.fromkeys(names, value)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"{what} names studies that are not optimized here: {unknown}.")
    return {name: value.get(name) for name in names}  # type: ignore[misc]


def on_one_storage(studies: list[optuna.Study]) -> list[optuna.Study]:
    """The studies on the first one's storage object, which the pool's service serves.

    Studies made from the same database URL (each ``create_study(storage=url)`` makes its
    own storage object) are loaded again onto that object; any other storage is refused.
    """
    first = optuna_adapter.storage_of(studies[0])
    url = optuna_adapter.rdb_url_of(first)
    same: list[optuna.Study] = []
    for study in studies:
        storage = optuna_adapter.storage_of(study)
        if storage is first:
            same.append(study)
        elif url is not None and optuna_adapter.rdb_url_of(storage) == url:
            same.append(
                optuna.load_study(
                    study_name=study.study_name,
                    storage=first,
                    sampler=study.sampler,
                    pruner=study.pruner,
                )
            )
        else:
            raise ValueError(
                f"Study '{study.study_name}' is not on the storage of study "
                f"'{studies[0].study_name}': optimize_many serves all its studies from one "
                "storage. Create them on one storage object (storage = "
                "optuna.storages.InMemoryStorage(), JournalStorage(...) or RDBStorage(url), "
                "passed to every create_study) or on one database URL."
            )
    return same


def with_limits(
    config: RunConfig, n_trials: int | None, timeout: float | None, cap: int | None
) -> RunConfig:
    """A run's config with its own study's limits."""
    return dataclasses.replace(
        config, n_trials=n_trials, timeout=timeout, max_concurrent_trials=cap
    )


def check_bar(show_progress_bar: object) -> None:
    """``optimize_many``'s ``show_progress_bar``: ``True``, ``False`` or ``"studies"``."""
    if show_progress_bar not in (True, False, "studies"):
        raise ValueError(
            "show_progress_bar must be True, False or 'studies' (a line per study too), "
            f"but got {show_progress_bar!r}."
        )
