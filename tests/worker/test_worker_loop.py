"""The worker side: ``run_worker`` and the ``RemoteTrial`` an objective receives."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from optuna_spark import RemoteError
from optuna_spark._coordinator import ATTR_FAIL_REASON
from optuna_spark._worker import STUCK_EXIT_CODE
from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.remote import WorkerSpec
from optuna_spark.remote import run_worker
from tests import _workers as w
from tests._helpers import Workers
from tests._helpers import wait_until

OpenRun = Callable[..., StudyRun]


def _spec(server: StudyServer, run: StudyRun, **kwargs: Any) -> WorkerSpec:
    return WorkerSpec(server.endpoint, run.run_id, **kwargs)


@pytest.mark.timeout(30)
def test_remote_trial_suggests_and_reads_through_the_drivers_trial(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    seen: dict[int, dict[str, Any]] = {}
    choices: list[Any] = [0.5, 2, "a", None, True]

    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 1)
        values = {
            "x": x,
            "lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
            "s": trial.suggest_float("s", 0, 1, step=0.25),
            "n": trial.suggest_int("n", 1, 9, step=2),
            "k": trial.suggest_int("k", 1, 1024, log=True),
            "c": trial.suggest_categorical("c", choices),
        }
        trial.set_user_attr("nested", {"a": [1, 2], "b": None})
        trial.set_constraint("c0", x - 0.5)
        seen[trial.number] = {
            "values": values,
            "again": trial.suggest_float("x", 0, 1),
            "params": trial.params,
            "distributions": trial.distributions,
            "user_attrs": trial.user_attrs,
            "constraints": trial.constraints,
            "datetime_start": trial.datetime_start,
            "number": trial.number,
        }
        return x

    run = open_run(n_trials=8)
    workers.start(_spec(server, run), objective, 2)
    assert run.wait(20)
    workers.join()

    assert sorted(seen) == list(range(8))
    for t in run.study.trials:
        s = seen[t.number]
        assert t.state == TrialState.COMPLETE
        assert s["number"] == t.number
        assert s["values"] == s["params"] == t.params
        assert s["again"] == t.params["x"]  # suggesting a name twice gives the same value
        assert any(s["values"]["c"] is choice for choice in choices)  # the caller's object
        assert type(s["values"]["c"]) is type(t.params["c"])
        assert s["distributions"] == t.distributions
        assert t.distributions["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
        assert t.distributions["s"] == FloatDistribution(0, 1, step=0.25)
        assert t.distributions["n"] == IntDistribution(1, 9, step=2)
        assert t.distributions["k"] == IntDistribution(1, 1024, log=True)
        assert t.distributions["c"] == CategoricalDistribution(choices)
        assert s["user_attrs"] == t.user_attrs == {"nested": {"a": [1, 2], "b": None}}
        assert s["constraints"] == t.constraints == {"c0": t.params["x"] - 0.5}
        assert isinstance(s["datetime_start"], datetime.datetime)
        assert s["datetime_start"] == t.datetime_start


@pytest.mark.timeout(30)
def test_bad_arguments_raise_in_the_objective_like_optuna(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    errors: list[tuple[str, type[BaseException], str]] = []

    def attempt(what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as e:
            errors.append((what, type(e), str(e)))

    def objective(trial: RemoteTrial) -> float:
        attempt("object choice", lambda: trial.suggest_categorical("c", [object()]))  # type: ignore[list-item]
        attempt("report str", lambda: trial.report("abc", 0))  # type: ignore[arg-type]
        attempt("report step", lambda: trial.report(1.0, 1.5))  # type: ignore[arg-type]
        attempt("bad range", lambda: trial.suggest_float("y", 1, 0))
        attempt("nan constraint", lambda: trial.set_constraint("c", float("nan")))
        return 0.0

    run = open_run(n_trials=1)
    workers.start(_spec(server, run), objective, 1)
    assert run.wait(20)
    workers.join()

    kinds = {what: kind for what, kind, _ in errors}
    assert kinds == {
        "object choice": TypeError,
        "report str": TypeError,
        "report step": TypeError,
        "bad range": ValueError,  # raised by the driver's optuna.Trial, re-raised here
        "nan constraint": ValueError,
    }
    assert run.study.trials[0].state == TrialState.COMPLETE


@pytest.mark.timeout(30)
def test_trial_study_on_a_worker_reads_and_writes_the_drivers_study(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    seen: dict[int, dict[str, Any]] = {}

    def objective(trial: RemoteTrial) -> float:
        study = trial.study
        study.set_user_attr(f"seen_by_{trial.number}", trial.number)
        seen[trial.number] = {
            "name": study.study_name,
            "direction": study.direction,
            "trials": {t.number: t.state for t in study.trials},
        }
        return trial.suggest_float("x", 0, 1)

    study = optuna.create_study(storage=server.storage, direction="maximize")
    run = open_run(study, n_trials=6)
    workers.start(_spec(server, run), objective, 2)
    assert run.wait(20)
    workers.join()

    for number, s in seen.items():
        assert s["name"] == study.study_name
        assert s["direction"] == optuna.study.StudyDirection.MAXIMIZE
        assert s["trials"][number] == TrialState.RUNNING  # the trial sees itself running
    assert study.user_attrs == {f"seen_by_{n}": n for n in range(6)}
    # Workers close every connection they opened, RemoteStorage's included.
    assert wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("optuna-spark-conn")]
    )


@pytest.mark.timeout(30)
def test_worker_goes_on_after_the_driver_ended_its_trial(
    make_server: Callable[..., StudyServer], workers: Workers
) -> None:
    server = make_server(tick_interval=0.025)
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=3, trial_timeout=0.5)
    run.start()
    server.add_run(run)

    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:
            time.sleep(1.2)
            trial.report(x, 0)  # the driver has ended this trial: this raises
        return x

    workers.start(_spec(server, run, heartbeat_interval=0.05), objective, 1)
    assert run.wait(20), "the worker stopped serving after its trial was ended by the driver"
    workers.join()

    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].system_attrs[ATTR_FAIL_REASON].startswith("timeout")
    assert workers.results == {"test-worker-0": 3}
    assert run.error is None


@pytest.mark.timeout(60)
def test_a_stuck_worker_process_exits_so_its_slot_is_freed(
    make_server: Callable[..., StudyServer], workers: Workers
) -> None:
    server = make_server(tick_interval=0.025)
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=4, trial_timeout=0.5)
    run.start()
    server.add_run(run)

    spec = _spec(server, run, heartbeat_interval=0.05, exit_if_stuck_after=0.3)
    workers.start(spec, w.objective_stuck, 2, "process")
    assert run.wait(30)
    workers.join(timeout=20)

    assert sorted(c or 0 for c in workers.exitcodes) == [0, STUCK_EXIT_CODE]
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    assert trials[0].system_attrs[ATTR_FAIL_REASON].startswith("timeout")


@pytest.mark.timeout(30)
def test_keyboard_interrupt_fails_the_trial_stops_the_run_and_is_reraised(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    def objective(trial: RemoteTrial) -> float:
        trial.suggest_float("x", 0, 1)
        raise KeyboardInterrupt

    run = open_run(n_trials=5)
    workers.start(_spec(server, run), objective, 1)
    assert run.wait(20)
    workers.join()

    assert isinstance(workers.results["test-worker-0"], KeyboardInterrupt)
    assert isinstance(run.error, RemoteError)
    assert run.error.remote_type == "KeyboardInterrupt"
    assert [t.state for t in run.study.trials] == [TrialState.FAIL]


def test_catch_must_be_a_tuple(server: StudyServer, open_run: OpenRun) -> None:
    run = open_run(n_trials=1)
    with pytest.raises(TypeError, match="catch"):
        run_worker(_spec(server, run), w.objective_basic, catch=[ValueError])  # type: ignore[arg-type]


def test_unknown_run_is_a_key_error(server: StudyServer) -> None:
    spec = WorkerSpec(server.endpoint, "no-such-run")
    with pytest.raises(KeyError, match="no-such-run"):
        run_worker(spec, w.objective_basic)


@pytest.mark.timeout(30)
def test_a_report_the_driver_refused_fails_the_trial_like_in_process(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    """``report`` does not wait for its reply; its error still fails the trial and the run."""

    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 1)
        trial.report(x, -1)  # Optuna refuses negative steps (on the driver)
        raise optuna.TrialPruned()

    run = open_run(n_trials=5)
    workers.start(_spec(server, run), objective, 1)
    assert run.wait(20)
    workers.join()

    assert type(run.error) is ValueError
    assert "must be non-negative" in str(run.error)
    assert [t.state for t in run.study.trials] == [TrialState.FAIL]
    assert "must be non-negative" in run.study.trials[0].system_attrs[ATTR_FAIL_REASON]
    assert workers.results == {"test-worker-0": 1}


def test_a_value_that_cannot_be_sent_fails_only_its_trial(server: StudyServer) -> None:
    study = optuna.create_study(storage=server.storage)
    run = StudyRun(study, n_trials=2)
    run.start()
    server.add_run(run)

    def objective(trial: RemoteTrial) -> float:
        trial.set_user_attr("model", object())  # not plain data
        return 1.0

    n = run_worker(WorkerSpec(server.endpoint, run.run_id), objective, catch=(TypeError,))
    assert n == 2
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert (
        "cannot be sent to the driver" in study.trials[0].system_attrs["optuna_spark:fail_reason"]
    )


@pytest.mark.timeout(30)
def test_a_bad_argument_is_a_type_error_and_the_trial_goes_on(
    server: StudyServer, open_run: OpenRun, workers: Workers
) -> None:
    run = open_run(n_trials=1)

    def objective(trial: RemoteTrial) -> float:
        with pytest.raises(TypeError, match="Bad argument for SetUserAttr"):
            trial.set_user_attr(7, "a key must be a string")  # type: ignore[arg-type]
        trial.set_user_attr("ok", True)  # the connection is still good
        return trial.suggest_float("x", 0, 1)

    workers.start(_spec(server, run), objective, 1)
    assert run.wait(20)
    workers.join()
    assert run.error is None
    (trial,) = run.study.trials
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["ok"] is True
