"""StoragePatience: transient storage errors are retried within the grace, others raised."""

from __future__ import annotations

import optuna
import pytest
from sqlalchemy import exc as sqlalchemy_exc

from optuna_spark._coordinator._patience import StoragePatience
from optuna_spark._coordinator._patience import is_transient
from optuna_spark.exceptions import StorageUnavailableError


def _lost_connection() -> Exception:
    cause = sqlalchemy_exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    try:
        raise optuna.exceptions.StorageInternalError(
            "An exception is raised during the commit."
        ) from cause
    except optuna.exceptions.StorageInternalError as e:
        return e


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_what_is_transient() -> None:
    assert is_transient(_lost_connection())  # Optuna's RDB error, caused by a lost connection
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(optuna.exceptions.StorageInternalError("too long"))
    assert not is_transient(ValueError("a bad value"))
    integrity = sqlalchemy_exc.IntegrityError("INSERT", {}, Exception("duplicate"))
    assert not is_transient(integrity)


def test_an_outage_shorter_than_the_grace_is_ridden_out() -> None:
    clock = _Clock()
    patience = StoragePatience(10.0, sleep=clock.sleep, clock=clock)
    failures = iter([_lost_connection()] * 5)

    def call() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "written"

    assert patience.call(call) == "written"
    assert 0 < clock.now < 10.0


def test_an_outage_longer_than_the_grace_says_what_failed_and_for_how_long() -> None:
    clock = _Clock()
    patience = StoragePatience(5.0, sleep=clock.sleep, clock=clock)

    def call() -> None:
        raise _lost_connection()

    with pytest.raises(
        StorageUnavailableError, match=r"failed for 5 s, longer than storage_grace=5 s"
    ):
        patience.call(call)


def test_other_errors_and_calls_that_must_answer_now_are_not_retried() -> None:
    clock = _Clock()
    patience = StoragePatience(10.0, sleep=clock.sleep, clock=clock)
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("a value the storage refuses")

    with pytest.raises(ValueError):
        patience.call(bad)
    with patience.once(), pytest.raises(optuna.exceptions.StorageInternalError):
        patience.call(lambda: (_ for _ in ()).throw(_lost_connection()))
    assert calls == [1] and clock.now == 0.0
