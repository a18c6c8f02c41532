"""How ``optimize`` follows its run and job: by their events, with every path bounded.

The run is real; the Spark job is a stand-in whose end the test controls, so these need no
Spark. A real job's late error is tested at the end (marked ``spark``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import optuna
import pytest

from optuna_spark._coordinator import StopReason
from optuna_spark._spark._supervise import supervise
from optuna_spark.remote import StudyRun
from optuna_spark.wire import messages as m
from tests._calls import ask
from tests._calls import tell


class _Job:
    """A job that ends when the test says so, signalling the run as a real one does."""

    def __init__(self, run: StudyRun) -> None:
        self._run = run
        self.finished = False
        self.error: BaseException | None = None
        self.cancelled = threading.Event()
        self.detached = False

    def end(self, error: BaseException | None = None) -> None:
        self.error, self.finished = error, True
        self._run.changes.notify()

    def cancel(self, wait: float = 0.0) -> bool:
        self.cancelled.set()
        self.end(RuntimeError("cancelled"))
        return True

    def detach(self) -> None:
        self.detached = True

    def failure_message(self) -> str | None:
        return None if self.error is None else f"Spark says: {self.error}"


def _supervise(run: StudyRun, job: _Job, **kwargs: Any) -> bool:
    options: dict[str, Any] = {
        "n_workers": 2,
        "stuck_grace": 30.0,
        "stop_running_trials": True,
        "wind_down": 30.0,
    }
    options.update(kwargs)
    return supervise(run, job, **options)


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


def test_returns_once_the_run_is_done_and_every_worker_dismissed() -> None:
    run = StudyRun(optuna.create_study(), n_trials=1)
    run.start()
    job = _Job(run)
    thread, out = _in_thread(lambda: _supervise(run, job))
    reply = ask(run, 1)
    assert reply is not None
    tell(run, 1, reply, "values", 1.0)
    assert run.wait(30)
    thread.join(0.2)
    assert thread.is_alive()  # the workers have not been told to stop yet
    for conn in (1, 2):
        assert run.ask(conn, m.WorkerInfo(host="h", pid=conn, partition=conn)) is None
    thread.join(10)
    assert out == [False] and job.detached and not job.cancelled.is_set()


def test_a_job_that_ends_under_a_running_study_closes_the_run_with_sparks_reason() -> None:
    run = StudyRun(optuna.create_study(), n_trials=10)
    run.start()
    job = _Job(run)
    thread, out = _in_thread(lambda: _supervise(run, job))
    reply = ask(run, 1)
    assert reply is not None
    job.end(RuntimeError("stage failed"))
    thread.join(10)
    assert out == [True]
    assert run.wait(30) and run.stop_reason is StopReason.WORKERS_GONE
    trial = run.study.trials[0]
    assert trial.system_attrs["optuna_spark:fail_reason"] == (
        "worker lost: Spark says: stage failed (host=test-host)"
    )


def test_after_an_error_stuck_trials_get_stuck_grace_then_the_job_is_cancelled() -> None:
    run = StudyRun(optuna.create_study(), n_trials=10)
    run.start()
    job = _Job(run)
    thread, out = _in_thread(lambda: _supervise(run, job, stuck_grace=0.2))
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    tell(run, 1, a, "failed", error=("ValueError", "boom", ""), caught=False)
    assert job.cancelled.wait(10)  # b never asks should_prune: it is failed, the job cancelled
    thread.join(10)
    assert out == [False]
    assert run.wait(30) and isinstance(run.error, ValueError)
    assert "another trial raised" in run.study.trials[1].system_attrs["optuna_spark:fail_reason"]


def test_workers_that_never_ask_again_are_cancelled_after_the_wind_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = StudyRun(optuna.create_study(), n_trials=1)
    run.start()
    job = _Job(run)
    reply = ask(run, 1)
    assert reply is not None
    tell(run, 1, reply, "values", 1.0)
    with caplog.at_level(logging.WARNING, logger="optuna_spark"):
        assert _supervise(run, job, wind_down=0.1) is False
    assert job.cancelled.is_set() and not job.detached
    assert "still running 0.1 s after the study" in caplog.text


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_a_job_error_after_the_study_is_logged_not_lost(
    spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from optuna_spark._spark._job import SparkJob

    ended = threading.Event()

    def task(_: Any) -> Any:
        raise RuntimeError("executor lost while winding down")
        yield 0

    job = SparkJob(spark, "late", "optuna-spark-test-late", 1, task, on_end=ended.set)
    job.detach()  # the study is over before the tasks wind down
    with caplog.at_level(logging.WARNING, logger="optuna_spark"):
        job.start()
        assert ended.wait(100)
    assert "failed after its study was over" in caplog.text
    assert "executor lost while winding down" in caplog.text


def test_an_error_while_already_stopping_still_ends_stuck_trials() -> None:
    run = StudyRun(optuna.create_study(), n_trials=10)
    run.start()
    job = _Job(run)
    a, b = ask(run, 1), ask(run, 2)
    assert a is not None and b is not None
    run.stop(StopReason.STUDY)  # draining already: the error changes no phase
    thread, _ = _in_thread(lambda: _supervise(run, job, stuck_grace=0.2))
    tell(run, 1, a, "failed", error=("ValueError", "boom", ""), caught=False)
    assert job.cancelled.wait(10), "the stuck trial was never ended"
    thread.join(10)
    assert run.wait(30) and isinstance(run.error, ValueError)


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_a_job_we_cancelled_is_not_reported_as_a_late_failure(
    spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from optuna_spark._spark._job import SparkJob

    ended = threading.Event()

    def task(_: Any) -> Any:
        raise RuntimeError("cancelled by the test")
        yield 0

    job = SparkJob(spark, "cancelled", "optuna-spark-test-cancel", 1, task, on_end=ended.set)
    with caplog.at_level(logging.WARNING, logger="optuna_spark"):
        job.start()
        job.cancel(wait=100)
        assert ended.wait(100)
        job.detach()
    assert "failed after its study was over" not in caplog.text
