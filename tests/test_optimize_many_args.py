"""``optimize_many`` refuses what it cannot run before anything starts, saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_spark import SparkExecutor
from optuna_spark._optuna_adapter import storage_of


def _objective(trial: Any) -> float:
    return float(trial.suggest_float("x", 0, 1))


def _two(storage: Any = None) -> list[optuna.Study]:
    storage = storage or optuna.storages.InMemoryStorage()
    return [optuna.create_study(study_name=n, storage=storage) for n in ("a", "b")]


@pytest.mark.parametrize(
    ("studies", "func", "error", "match"),
    [
        (lambda: [], _objective, ValueError, "studies is empty"),
        (lambda: _two()[0], _objective, TypeError, "sequence of studies"),
        (lambda: [(s, _objective) for s in _two()], _objective, TypeError, "not a mix"),
        (lambda: _two(), None, TypeError, "not a mix"),
        (lambda: [_two()[0]] * 2, _objective, ValueError, r"appear more often: \['a'\]"),
        (
            lambda: [optuna.create_study(study_name=n) for n in ("a", "b")],
            _objective,
            ValueError,
            "not on the storage of study 'a'",
        ),
    ],
)
def test_bad_studies_are_refused_saying_what_to_do(
    studies: Any, func: Any, error: type[Exception], match: str
) -> None:
    executor = SparkExecutor(n_workers=2)
    with pytest.raises(error, match=match):
        executor.optimize_many(studies(), func, n_trials=1)
    assert executor._spark is None  # no session was started


def test_limits_naming_unknown_studies_and_bad_values_are_refused() -> None:
    executor = SparkExecutor(n_workers=2)
    with pytest.raises(ValueError, match=r"n_trials names studies .*\['c'\]"):
        executor.optimize_many(_two(), _objective, n_trials={"c": 3})
    with pytest.raises(ValueError, match="max_concurrent_trials must be a positive int"):
        executor.optimize_many(_two(), _objective, n_trials=1, max_concurrent_trials=0)
    with pytest.raises(ValueError, match="timeout"):
        executor.optimize_many(_two(), _objective, timeout={"a": -1.0})
    assert executor._spark is None


def test_studies_on_one_database_url_are_one_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    studies = [optuna.create_study(study_name=n, storage=url) for n in ("a", "b")]
    SparkExecutor(n_workers=2).optimize_many(studies, _objective, n_trials=0)  # nothing runs
    from optuna_spark._spark._many import on_one_storage

    same = on_one_storage(studies)
    assert [s.study_name for s in same] == ["a", "b"]
    assert storage_of(same[1]) is storage_of(same[0])  # served by one service


def test_the_cluster_coordinator_refuses_studies_the_cluster_cannot_reach() -> None:
    executor = SparkExecutor(n_workers=2, coordinator="cluster")
    with pytest.raises(ValueError, match="cannot reach an in-memory study"):
        executor.optimize_many(_two(), _objective, n_trials=1)


def test_one_objective_shared_by_many_studies_is_pickled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from optuna_spark._spark import _checks

    pickled: list[object] = []
    real = _checks.check_picklable

    def counting(what: str, objects: dict[str, Any], hint: str) -> None:
        pickled.append(objects.get("objective"))
        real(what, objects, hint)

    monkeypatch.setattr(_checks, "check_picklable", counting)
    storage = optuna.storages.InMemoryStorage()
    studies = [optuna.create_study(study_name=f"s{k}", storage=storage) for k in range(5)]
    SparkExecutor(n_workers=2).optimize_many(studies, _objective, n_trials=0)  # checks only
    assert pickled == [_objective]


def test_a_progress_bar_that_is_neither_on_off_nor_per_study_is_refused() -> None:
    studies = [optuna.create_study(study_name=f"s{i}") for i in range(2)]
    with pytest.raises(ValueError, match="True, False or 'studies'"):
        SparkExecutor().optimize_many(studies, lambda t: 0.0, show_progress_bar="best")  # type: ignore[arg-type]
    assert all(s.trials == [] for s in studies)
