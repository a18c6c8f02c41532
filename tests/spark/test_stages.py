"""JobSet: the jobs of several resource profiles, followed as one."""

from __future__ import annotations

from typing import Any

from optuna_spark._spark._stages import JobSet


class _Job:
    def __init__(self, name: str) -> None:
        self.name, self.finished, self.error = name, False, None
        self.cancelled = self.detached = False

    def cancel(self, wait: float = 0.0) -> bool:
        self.cancelled = True
        return True

    def detach(self) -> None:
        self.detached = True

    def failure_message(self) -> str | None:
        return None if self.error is None else str(self.error)


def test_a_profile_whose_workers_ended_leaves_the_others_running() -> None:
    small, large = _Job("small"), _Job("large")
    jobs = JobSet([small, large])  # type: ignore[list-item]
    small.finished = True  # its workers were told to stop: the other profile goes on
    assert not jobs.finished and jobs.error is None
    large.finished = True
    assert jobs.finished


def test_a_profile_that_failed_ends_the_set_and_names_its_job() -> None:
    small, large = _Job("small"), _Job("large")
    jobs = JobSet([small, large])  # type: ignore[list-item]
    large.finished, large.error = True, RuntimeError("no executor fits")  # type: ignore[assignment]
    assert jobs.finished and jobs.error is large.error
    assert jobs.failure_message() == "large: no executor fits"
    assert jobs.cancel() and small.cancelled and large.cancelled
    jobs.detach()
    assert small.detached and large.detached


def test_failure_message_is_none_while_nothing_failed() -> None:
    jobs: Any = JobSet([_Job("a")])  # type: ignore[list-item]
    assert jobs.failure_message() is None
