"""The run's state machine: running -> draining(reason) -> done, and who wins a race of reasons."""

from __future__ import annotations

import threading

import pytest

from optuna_spark._coordinator import Phase
from optuna_spark._coordinator import StopReason
from optuna_spark._coordinator._state import Changes
from optuna_spark._coordinator._state import RunState


def test_a_run_drains_then_finishes_and_signals_each_transition() -> None:
    changes: list[Phase] = []
    state = RunState(on_change=lambda: changes.append(state.phase))
    assert state.phase is Phase.RUNNING and state.reason is None
    state.finish()  # nothing to finish while it still hands out trials
    assert state.phase is Phase.RUNNING

    state.drain(StopReason.N_TRIALS)
    assert state.phase is Phase.DRAINING and state.reason is StopReason.N_TRIALS
    assert not state.interrupting  # running trials finish
    state.finish()
    assert state.phase is Phase.DONE
    assert changes == [Phase.DRAINING, Phase.DONE]


def test_the_first_reason_wins_unless_a_later_one_interrupts() -> None:
    state = RunState()
    state.drain(StopReason.EXHAUSTED)
    state.drain(StopReason.N_TRIALS)  # another reason only to stop handing out: ignored
    assert state.reason is StopReason.EXHAUSTED
    state.drain(StopReason.TIMEOUT)  # running trials must now be told to stop
    assert state.reason is StopReason.TIMEOUT and state.interrupting
    state.drain(StopReason.STUDY)  # the first interrupting reason stays
    assert state.reason is StopReason.TIMEOUT


def test_an_error_is_kept_once_and_drains_the_run() -> None:
    state = RunState()
    first, second = ValueError("first"), RuntimeError("second")
    state.fail(first)
    state.fail(second)
    assert state.error is first
    assert state.reason is StopReason.ERROR and state.interrupting


def test_nothing_changes_once_done() -> None:
    state = RunState()
    state.drain(StopReason.N_TRIALS, "detail")
    state.finish()
    state.drain(StopReason.INTERRUPTED)
    assert state.phase is Phase.DONE and state.reason is StopReason.N_TRIALS
    assert state.detail == "n_trials reached: detail"


@pytest.mark.parametrize("reason", list(StopReason))
def test_only_the_reasons_that_end_the_hand_out_let_running_trials_finish(
    reason: StopReason,
) -> None:
    assert reason.interrupts == (reason not in (StopReason.N_TRIALS, StopReason.EXHAUSTED))


def test_changes_wake_a_waiter_when_its_condition_holds() -> None:
    changes = Changes()
    box: list[int] = []
    waiter_result: list[bool] = []
    waiter = threading.Thread(
        target=lambda: waiter_result.append(changes.wait_for(lambda: bool(box), timeout=10))
    )
    waiter.start()
    box.append(1)
    changes.notify()
    waiter.join(10)
    assert waiter_result == [True]
    assert changes.wait_for(lambda: False, timeout=0.01) is False
