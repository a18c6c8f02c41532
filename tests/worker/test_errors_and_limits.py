"""What a worker's failures look like on the driver: the same exception, printed once, and
messages over the size limit refused with the limit named."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark import MessageTooLargeError
from optuna_spark import RemoteStorage
from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.wire import RemoteTraceback
from tests import _workers as w
from tests._helpers import Workers

OpenRun = Callable[..., StudyRun]


def _run_one(
    server: StudyServer, run: StudyRun, workers: Workers, objective: Any, **kwargs: Any
) -> None:
    workers.start(WorkerSpec(server.endpoint, run.run_id), objective, 1, **kwargs)
    assert run.wait(20)
    workers.join()


def _name_error(trial: RemoteTrial) -> float:
    return undefined_name  # type: ignore[name-defined]  # noqa: F821


def _flaky(trial: RemoteTrial) -> float:
    raise w.FlakyError("the objective's own exception type")


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("objective", "expected"), [(_name_error, NameError), (_flaky, w.FlakyError)]
)
def test_an_uncaught_error_comes_back_as_itself_with_its_traceback(
    server: StudyServer,
    open_run: OpenRun,
    workers: Workers,
    objective: Any,
    expected: type[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = open_run(n_trials=3)
    with caplog.at_level(logging.WARNING):
        _run_one(server, run, workers, objective)
    assert type(run.error) is expected
    assert isinstance(run.error.__cause__, RemoteTraceback)
    assert "Traceback (most recent call last)" in str(run.error.__cause__)
    # Raised with its traceback, so not printed beforehand as well.
    assert "Traceback (most recent call last)" not in caplog.text
    assert "Trial 0 failed" in caplog.text


@pytest.mark.timeout(30)
def test_a_caught_error_is_logged_once_with_its_traceback(
    server: StudyServer,
    open_run: OpenRun,
    workers: Workers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = open_run(n_trials=1)
    with caplog.at_level(logging.WARNING):
        _run_one(server, run, workers, _flaky, catch=(w.FlakyError,))
    assert run.error is None
    assert caplog.text.count("Traceback (most recent call last)") == 1


@pytest.mark.timeout(30)
def test_a_message_over_the_servers_limit_is_refused_naming_limit_and_size(
    make_server: Callable[..., StudyServer], workers: Workers
) -> None:
    server = make_server(max_request_bytes=4096)
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=2)
    run.start()
    server.add_run(run)
    seen: list[str] = []

    def objective(trial: RemoteTrial) -> float:
        try:
            trial.set_user_attr("big", "x" * 10_000)
        except MessageTooLargeError as e:
            seen.append(str(e))
        trial.set_user_attr("small", "fits")  # the connection goes on
        return 1.0

    _run_one(server, run, workers, objective)
    assert len(seen) == 2
    assert "exceeds the server's limit of 4096 bytes" in seen[0]
    assert "SetUserAttr message of 100" in seen[0]  # its size, in bytes
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].user_attrs == {"small": "fits"}

    # Every client learns the limit in the handshake, whatever it was made with.
    for storage in (
        RemoteStorage.from_endpoint(server.endpoint),
        RemoteStorage(server.host, server.port, server.token),
    ):
        study_id = storage.get_study_id_from_name(study.study_name)
        with pytest.raises(MessageTooLargeError, match=r"limit of 4096 .*max_request_bytes"):
            storage.set_study_user_attr(study_id, "big", "x" * 10_000)
        assert storage.get_study_user_attrs(study_id) == {}  # the connection goes on
        storage.close()


@pytest.mark.timeout(60)
def test_an_exception_of_any_size_comes_back_as_itself(
    make_server: Callable[..., StudyServer], workers: Workers
) -> None:
    # Its message and traceback over the request limit: the worker's own tell failed, the
    # task died as "worker lost", and the study went on.
    server = make_server()
    run = StudyRun(optuna.create_study(storage=server.storage), n_trials=3)
    server.add_run(run)

    def objective(trial: RemoteTrial) -> float:
        raise ValueError("x" * (20 << 20))

    workers.start(run.worker_spec(server.endpoint), objective, 1)
    assert run.wait(60)
    workers.join()
    assert isinstance(run.error, ValueError)
    assert "characters left out by optuna-spark" in str(run.error)
    assert len(run.study.trials) == 1
