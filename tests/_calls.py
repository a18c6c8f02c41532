"""Calls a worker makes, made directly on a ``StudyRun`` (no server, no wire)."""

from __future__ import annotations

from typing import Any

from optuna_spark.remote import StudyRun
from optuna_spark.wire import messages as m

WORKER = m.WorkerInfo(host="test-host", pid=0)


def ask(run: StudyRun, conn: int) -> m.AskReply | None:
    return run.ask(conn, WORKER)


def suggest_float(run: StudyRun, conn: int, reply: m.AskReply, name: str = "x") -> float:
    request = m.SuggestFloat(run.run_id, reply.trial_id, name, 0.0, 1.0, None, False)
    return float(run.call_trial(conn, request))


def suggest_categorical(
    run: StudyRun, conn: int, reply: m.AskReply, name: str, choices: list[Any]
) -> Any:
    return run.call_trial(conn, m.SuggestCategorical(run.run_id, reply.trial_id, name, choices))


def tell(
    run: StudyRun,
    conn: int,
    reply: m.AskReply,
    outcome: str,
    value: float | None = None,
    error: tuple[str, str, str] | None = None,
    caught: bool = True,
) -> None:
    """``outcome`` is ``"values"``, ``"pruned"`` or ``"failed"`` (with ``error``); returns
    once the run has recorded it."""
    request: m.TellValues | m.TellPruned | m.TellFailed
    if outcome == "values":
        request = m.TellValues(run.run_id, reply.trial_id, value)
    elif outcome == "pruned":
        request = m.TellPruned(run.run_id, reply.trial_id)
    else:
        assert error is not None
        request = m.TellFailed(run.run_id, reply.trial_id, m.ErrorInfo(*error), caught)
    run.tell(conn, request)
    assert run.flush(30)
