"""The ablation samplers' ``availability``: what a trial asked for now would get.

Plain Optuna studies on in-memory storages: the protocol is the sampler's, not the driver's.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from collections.abc import Container
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from typing import TypeVar

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark._handout import Availability
from optuna_spark._handout import FiniteSampler
from optuna_spark._optuna_adapter import finite_view
from optuna_spark.ablation import AblationHistory
from optuna_spark.ablation import AblationPolicy
from optuna_spark.ablation import AblationSampler
from optuna_spark.ablation import ArmSpec
from optuna_spark.ablation import LeaveOneOut
from optuna_spark.ablation import LOCOSampler

READY, WAIT, EXHAUSTED = Availability.READY, Availability.WAIT, Availability.EXHAUSTED
T = TypeVar("T")


class CountingStorage(InMemoryStorage):
    """An in-memory storage that counts the reads of every trial of a study (full scans)."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if states is None:  # Optuna's own look at the queue reads WAITING trials only
            self.scans += 1
        return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)


class FirstThenMore(AblationPolicy):
    """An adaptive policy: runs ``-a`` and ``-b``, then ``-ab`` once both have a result."""

    adaptive = True

    def __init__(self) -> None:
        super().__init__(components=["a", "b"])

    def arms(self, history: AblationHistory) -> list[ArmSpec]:
        singles = [ArmSpec("-a", ("a",)), ArmSpec("-b", ("b",))]
        if all(history.n_finished.get(arm.label, 0) for arm in singles):
            return [*singles, ArmSpec("-ab", ("a", "b"))]
        return singles


def _study(sampler: optuna.samplers.BaseSampler, storage: Any = None) -> optuna.Study:
    return optuna.create_study(sampler=sampler, storage=storage)


def _hand_out(study: optuna.Study) -> tuple[optuna.Trial, tuple[str, int]]:
    """What a driver does for one worker: ask the sampler, then the study."""
    sampler = study.sampler
    assert isinstance(sampler, AblationSampler)
    assert sampler.availability(study) is READY
    trial = study.ask()
    return trial, (trial.user_attrs["loco_arm"], trial.user_attrs["loco_repeat"])


def _pairs(study: optuna.Study) -> list[tuple[str, int]]:
    return [
        (t.user_attrs["loco_arm"], t.user_attrs["loco_repeat"])
        for t in study.get_trials(deepcopy=False)
        if "loco_arm" in t.user_attrs
    ]


@pytest.fixture
def one_thread() -> Iterator[Callable[[Callable[[], T]], T]]:
    """Run calls in one thread of their own (a second worker's thread of a driver)."""
    with ThreadPoolExecutor(max_workers=1) as pool:

        def run(call: Callable[[], T]) -> T:
            return pool.submit(call).result()

        yield run


# ---------------------------------------------------------------------------------------------
# The protocol.


def test_the_ablation_samplers_are_finite_samplers() -> None:
    loco = LOCOSampler(components=["a", "b"], seed=0)
    custom = AblationSampler(LeaveOneOut(components=["a"]), n_repeats=(2, 4), seed=0)
    for sampler in (loco, custom):
        assert isinstance(sampler, FiniteSampler)
        assert finite_view(sampler) is sampler


def test_fixed_repeats_are_ready_until_every_pair_started() -> None:
    sampler = LOCOSampler(components=["a", "b"], n_repeats=2, seed=0)
    study = _study(sampler)
    running = [_hand_out(study)[0] for _ in range(6)]
    assert sampler.availability(study) is EXHAUSTED  # all running, none finished
    assert sampler.is_exhausted(study) and not sampler.must_wait(study)
    for trial in running:
        study.tell(trial, 1.0)
    assert sampler.availability(study) is EXHAUSTED
    assert sorted(_pairs(study)) == sorted(
        (arm, r) for arm in ("base", "component:a", "component:b") for r in range(2)
    )


def test_a_waiting_trial_makes_it_ready() -> None:
    sampler = LOCOSampler(components=["a"], seed=0)
    study = _study(sampler)
    study.optimize(lambda t: 1.0)
    assert sampler.availability(study) is EXHAUSTED
    study.enqueue_trial({"loco_arm": "component:a", "loco_repeat": 0})
    assert sampler.availability(study) is READY
    trial = study.ask()
    assert trial.user_attrs["loco_duplicate"] is True
    study.tell(trial, 1.0)
    assert sampler.availability(study) is EXHAUSTED


def test_adaptive_repeats_wait_for_the_running_trials() -> None:
    sampler = LOCOSampler(components=["a"], n_repeats=(2, 6), seed=0)
    study = _study(sampler)
    running = [_hand_out(study)[0] for _ in range(4)]  # base and -a, repeats 0 and 1
    assert sampler.availability(study) is WAIT  # the next look needs their results
    assert sampler.must_wait(study) and not sampler.is_exhausted(study)
    study.enqueue_trial({"loco_arm": "base", "loco_repeat": 0})
    assert sampler.availability(study) is READY  # the queued trial goes out first
    study.tell(study.ask(), 0.0)
    noisy = {0: 0.0, 1: 1.0}  # undecided after two pairs: more repeats
    for trial in running:
        study.tell(trial, noisy[trial.user_attrs["loco_repeat"]])
    assert sampler.availability(study) is READY


def test_adaptive_repeats_end_once_decided() -> None:
    sampler = LOCOSampler(components=["a"], n_repeats=(2, 4), seed=0)
    study = _study(sampler)
    while (availability := sampler.availability(study)) is READY:
        trial = study.ask()
        repeat = trial.user_attrs["loco_repeat"]
        study.tell(trial, repeat + (5.0 if trial.user_attrs["loco_arm"] != "base" else 0.0))
    assert availability is EXHAUSTED
    assert len(study.trials) == 4  # the difference is the same on each seed: decided at once


def test_an_adaptive_policy_waits_then_adds_arms() -> None:
    sampler = AblationSampler(FirstThenMore(), seed=0)
    study = _study(sampler)
    first = [_hand_out(study)[0] for _ in range(2)]
    assert sampler.availability(study) is WAIT
    study.tell(first[0], 1.0)
    assert sampler.availability(study) is WAIT  # -b still runs, and decides
    study.tell(first[1], 2.0)
    trial, pair = _hand_out(study)
    assert pair == ("-ab", 0)
    study.tell(trial, 3.0)
    assert sampler.availability(study) is EXHAUSTED


def test_a_copy_of_the_sampler_keeps_no_look() -> None:
    sampler = LOCOSampler(components=["a"], seed=0)
    study = _study(sampler)
    assert sampler.availability(study) is READY
    copy = pickle.loads(pickle.dumps(sampler))
    assert copy.availability(_study(copy)) is READY


# ---------------------------------------------------------------------------------------------
# One read of the trials per hand-out.


@pytest.mark.parametrize("n_repeats", [2, (2, 4)])
def test_a_hand_out_reads_the_trials_once(n_repeats: int | tuple[int, int]) -> None:
    storage = CountingStorage()
    sampler = LOCOSampler(components=["a", "b"], n_repeats=n_repeats, seed=0)
    study = _study(sampler, storage)
    for _ in range(6):
        storage.scans = 0
        trial, _ = _hand_out(study)
        assert storage.scans == 1  # availability's; before_trial reuses it
        study.tell(trial, float(trial.number % 2))


def test_ask_without_availability_reads_the_trials_itself() -> None:
    storage = CountingStorage()
    study = _study(LOCOSampler(components=["a"], seed=0), storage)
    study.ask()
    assert storage.scans == 1


def test_a_trial_finished_in_between_makes_the_ask_read_again() -> None:
    storage = CountingStorage()
    sampler = LOCOSampler(components=["a", "b"], seed=0)
    study = _study(sampler, storage)
    first, _ = _hand_out(study)
    assert sampler.availability(study) is READY
    study.tell(first, 1.0)  # after_trial reads the trials, and the look is stale
    storage.scans = 0
    study.ask()
    assert storage.scans == 1


def test_a_trial_created_in_between_makes_the_ask_read_again() -> None:
    sampler = LOCOSampler(components=["a", "b"], seed=0)
    study = _study(sampler)
    assert sampler.availability(study) is READY
    study.ask()  # a new trial: the look no longer describes the study
    study.ask()
    assert sorted(_pairs(study)) == [("base", 0), ("component:a", 0)]


def test_a_trial_of_another_process_in_between_makes_the_ask_read_again() -> None:
    storage = InMemoryStorage()
    sampler = LOCOSampler(components=["a", "b"], seed=0)
    study = _study(sampler, storage)
    assert sampler.availability(study) is READY
    other = LOCOSampler(components=["a", "b"], seed=0)  # another process's, on the storage
    optuna.load_study(study_name=study.study_name, storage=storage, sampler=other).ask()
    study.ask()
    assert sorted(_pairs(study)) == [("base", 0), ("component:a", 0)]


def test_two_threads_looking_at_once_take_different_pairs(
    one_thread: Callable[[Callable[[], Any]], Any],
) -> None:
    storage = CountingStorage()
    sampler = LOCOSampler(components=["a", "b"], seed=0)
    study = _study(sampler, storage)
    assert sampler.availability(study) is READY
    assert one_thread(lambda: sampler.availability(study)) is READY
    study.ask()
    storage.scans = 0
    one_thread(study.ask)  # its look predates the trial just handed out: read again
    assert storage.scans == 1
    assert sorted(_pairs(study)) == [("base", 0), ("component:a", 0)]
