"""Reads of a whole study take turns, in arrival order, within a share of the server's time:
a client reading a large study in a loop (or several) cannot starve the running trials."""

from __future__ import annotations

import threading
from typing import Any

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from optuna_spark._coordinator._read_lane import ReadLane
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection
from tests._helpers import Workers

pytestmark = pytest.mark.timeout(60)


class _FakeTime:
    """A clock, a CPU clock and a sleep: a read of ``cost`` CPU seconds advances both."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0
        self.slept = 0.0

    def read(self, cost: float) -> float:
        self.now += cost
        self.cpu += cost
        return cost

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds

    def lane(self, share: float, burst: float) -> ReadLane:
        return ReadLane(
            share, burst, cpu_clock=lambda: self.cpu, clock=lambda: self.now, sleep=self.sleep
        )


def test_a_burst_of_reads_is_served_at_once_and_reads_in_a_loop_get_their_share() -> None:
    time = _FakeTime()
    lane = time.lane(share=0.25, burst=1.0)
    for _ in range(5):  # 1 CPU second: the burst
        lane.run(lambda: time.read(0.2))
    assert time.slept == 0
    for _ in range(100):  # 20 more CPU seconds, in a loop
        lane.run(lambda: time.read(0.2))
    # Past the burst, the reads took a quarter of the time (to within one read).
    assert time.slept > 0
    assert 0.25 * time.now + 1.0 - 0.2 <= time.cpu <= 0.25 * time.now + 1.0 + 0.2


def test_reads_of_what_changed_never_wait() -> None:
    time = _FakeTime()
    lane = time.lane(share=0.25, burst=1.0)
    for _ in range(10_000):  # a sampler's incremental reads: 0.1 ms each, between trials
        lane.run(lambda: time.read(0.0001))
        time.sleep(0.001)
    assert time.slept == pytest.approx(10.0)  # only the pauses between reads


def test_a_share_and_a_burst_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="share must be in"):
        ReadLane(share=0)
    with pytest.raises(ValueError, match="burst must be at least 0"):
        ReadLane(burst=-1)


class _BlockingReads(InMemoryStorage):
    """Reads of the studies in ``blocked`` (id -> name) stop inside the storage until
    released, one per release; ``entered`` lists their names in the order they came in."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: dict[int, str] = {}
        self.entered: list[str] = []
        self.entered_changed = threading.Condition()
        self.release = threading.Semaphore(0)

    def get_all_trials(self, study_id: int, *args: Any, **kwargs: Any) -> Any:
        if study_id in self.blocked:
            with self.entered_changed:
                self.entered.append(self.blocked[study_id])
                self.entered_changed.notify_all()
            assert self.release.acquire(timeout=30)
        return super().get_all_trials(study_id, *args, **kwargs)

    def wait_entered(self, n: int) -> list[str]:
        with self.entered_changed:
            assert self.entered_changed.wait_for(lambda: len(self.entered) >= n, 30)
            return list(self.entered)


def test_study_reads_take_turns_in_arrival_order_and_the_run_goes_on(
    workers: Workers,
) -> None:
    # Before, every connection read at once: b and c would have read beside a.
    storage = _BlockingReads()
    server = StudyServer(storage)
    arrived = {name: threading.Event() for name in "abc"}
    route = server._routes[m.GetTrials]

    def noting_arrival(request: m.GetTrials, conn_id: int) -> Any:
        arrived[storage.blocked[request.study_id]].set()
        return route(request, conn_id)

    server.register(m.GetTrials, noting_arrival)
    with server:
        for name in "abc":  # one study per reader, 100 trials each
            study = optuna.create_study(storage=storage, study_name=name)
            study.add_trials([optuna.trial.create_trial(value=float(i)) for i in range(100)])
            storage.blocked[study._study_id] = name
        ids = {name: study_id for study_id, name in storage.blocked.items()}
        replies: dict[str, int] = {}

        def read(name: str) -> None:
            conn = Connection(server.endpoint)
            try:
                replies[name] = len(conn.call(m.GetTrials(ids[name], [], -1)))
            finally:
                conn.close()

        readers = {name: threading.Thread(target=read, args=(name,)) for name in "abc"}
        readers["a"].start()
        storage.wait_entered(1)  # a reads, inside the storage
        readers["b"].start()
        assert arrived["b"].wait(30)
        readers["c"].start()
        assert arrived["c"].wait(30)

        # While a reads and b and c wait their turn, the running trials are served as ever.
        study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(0))
        run = StudyRun(study, n_trials=20)
        server.add_run(run)
        workers.start(run.worker_spec(server.endpoint), _objective, 2)
        assert run.wait(30)
        workers.join()
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 20
        assert storage.entered == ["a"]  # b and c did not read beside a

        for _ in range(3):
            storage.release.release()
        for reader in readers.values():
            reader.join(30)
        assert storage.entered == ["a", "b", "c"]  # in the order they came
        assert replies == {"a": 100, "b": 100, "c": 100}


def _objective(trial: Any) -> float:
    return float(trial.suggest_float("x", 0, 1))
