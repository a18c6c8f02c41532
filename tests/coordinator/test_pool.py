"""A pool of runs: many studies served to one set of workers, each with its own limits."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark._coordinator._handout import Verdict
from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import RunPool
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._calls import WORKER
from tests._calls import ask
from tests._calls import suggest_float
from tests._helpers import Workers

pytestmark = pytest.mark.timeout(60)


def _studies(server: StudyServer, n: int, **kwargs: Any) -> list[optuna.Study]:
    return [
        optuna.create_study(
            study_name=f"segment-{i}",
            storage=server.storage,
            sampler=optuna.samplers.RandomSampler(seed=i),
            **kwargs,
        )
        for i in range(n)
    ]


class _InFlight:
    """Counts each study's trials running at once, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.order: list[str] = []

    def objective(self, work: Callable[[], None] = lambda: None) -> Callable[[RemoteTrial], Any]:
        def objective(trial: RemoteTrial) -> float:
            name = trial.study.study_name
            with self._lock:
                self._now[name] += 1
                self.most[name] = max(self.most[name], self._now[name])
                self.order.append(name)
            x = trial.suggest_float("x", 0, 1)
            work()
            with self._lock:
                self._now[name] -= 1
            return x

        return objective


def _serve(server: StudyServer, runs: list[StudyRun]) -> RunPool:
    pool = RunPool(runs)
    server.add_pool(pool)
    return pool


def test_each_study_runs_its_own_n_trials_one_at_a_time_on_shared_workers(
    server: StudyServer, workers: Workers
) -> None:
    studies = _studies(server, 40)
    runs = [StudyRun(s, n_trials=5, max_concurrent_trials=1) for s in studies]
    pool = _serve(server, runs)
    counting = _InFlight()
    workers.start(pool.worker_spec(server.endpoint), counting.objective(), 4)
    assert pool.wait(50)
    workers.join()

    for study in studies:
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5, study.study_name
    assert set(counting.most.values()) == {1}  # never two trials of one study at once
    assert pool.n_dismissed == 4  # every worker told to stop, once nothing was left
    # Fair share: at every point, no study is more than a round (plus the few trials the
    # workers were starting at that moment) ahead of another.
    started: Counter[str] = Counter({s.study_name: 0 for s in studies})
    spread = 0
    for name in counting.order:
        started[name] += 1
        spread = max(spread, max(started.values()) - min(started.values()))
    assert spread <= 2


def test_per_study_limits_and_one_studys_error_stops_only_that_study(
    server: StudyServer, workers: Workers
) -> None:
    studies = _studies(server, 3)
    runs = [
        StudyRun(studies[0], n_trials=2),
        StudyRun(studies[1], n_trials=6),
        StudyRun(studies[2], n_trials=4),
    ]
    pool = _serve(server, runs)

    def objective(trial: RemoteTrial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.study.study_name == "segment-2" and trial.number == 1:
            raise ValueError("bad segment")
        return x

    workers.start(pool.worker_spec(server.endpoint), objective, 2)
    assert pool.wait(50)
    workers.join()

    assert len(studies[0].trials) == 2 and len(studies[1].trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in studies[0].trials + studies[1].trials)
    failed = [t for t in studies[2].trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [1]
    # Nothing new started in that study after its error, and nothing was left running.
    assert len(studies[2].trials) <= 3
    assert all(t.state != TrialState.RUNNING for t in studies[2].trials)
    # The workers went on serving the other studies: none stopped with the error.
    assert all(isinstance(r, int) for r in workers.results.values())
    [(run, error)] = pool.errors
    assert run is runs[2] and isinstance(error, ValueError) and "bad segment" in str(error)


def test_a_connection_holding_a_trial_of_any_study_is_refused_another(
    server: StudyServer,
) -> None:
    studies = _studies(server, 2)
    pool = _serve(server, [StudyRun(s, n_trials=3) for s in studies])
    worker = optuna_spark_worker_info()
    first = pool.ask(7, worker)
    assert first is not None
    with pytest.raises(RuntimeError, match="still runs the trial"):
        pool.ask(7, worker)
    pool.stop()


def optuna_spark_worker_info() -> Any:
    from optuna_spark._worker._loop import worker_info

    return worker_info({"partition": 0})


class _Recorded(optuna.samplers.RandomSampler):
    """Records the thread that samples (the copies on workers share the class's list)."""

    threads: list[str] = []

    def sample_independent(self, *args: Any) -> Any:
        _Recorded.threads.append(threading.current_thread().name)
        return super().sample_independent(*args)


def test_workers_of_a_pool_sample_with_each_studys_own_sampler(
    server: StudyServer, workers: Workers
) -> None:
    # Two studies, each sampling on the workers with its own sampler: a fixed-point one for
    # the first (every trial the same x), random for the second.
    fixed = optuna.samplers.PartialFixedSampler({"x": 0.25}, optuna.samplers.RandomSampler())
    _Recorded.threads.clear()
    studies = [
        optuna.create_study(study_name="fixed", storage=server.storage, sampler=fixed),
        optuna.create_study(
            study_name="random",
            storage=server.storage,
            sampler=_Recorded(seed=1),
        ),
    ]
    runs = [StudyRun(s, n_trials=4, sampling="workers") for s in studies]
    pool = _serve(server, runs)
    spec = pool.worker_spec(server.endpoint)  # each study's sampler travels with it
    assert set(spec.samplers) == {r.run_id for r in runs}
    workers.start(spec, lambda trial: trial.suggest_float("x", 0, 1), 2)
    assert pool.wait(50)
    workers.join()
    assert [t.params["x"] for t in studies[0].trials] == [0.25] * 4
    assert len({t.params["x"] for t in studies[1].trials}) == 4
    # The second study's parameters were sampled by the workers, not by the driver.
    assert len(_Recorded.threads) == 4 and set(_Recorded.threads) <= workers.names


def test_a_lost_trial_of_any_study_resumes_before_anything_new_starts(
    server: StudyServer,
) -> None:
    studies = _studies(server, 2)
    pool = _serve(server, [StudyRun(s, n_trials=3, resume_lost_trials=1) for s in studies])
    worker = optuna_spark_worker_info()
    first = pool.ask(1, worker)
    assert first is not None
    lost_run = next(r for r in pool.runs if r.run_id == first.run_id)
    lost_run.connection_lost(1)  # its worker is gone: the trial waits to resume
    # The other study has nothing in flight, but the lost trial goes first.
    resumed = pool.ask(2, worker)
    assert resumed is not None
    assert (resumed.run_id, resumed.trial_id) == (first.run_id, first.trial_id)
    pool.stop()


class _SlowSampler(optuna.samplers.RandomSampler):
    """Holds every suggestion until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.sampling = threading.Event()
        self.go = threading.Event()

    def sample_independent(self, *args: Any, **kwargs: Any) -> Any:
        self.sampling.set()
        assert self.go.wait(30)
        return super().sample_independent(*args, **kwargs)


def test_a_study_at_its_cap_answers_wait_without_waiting_for_its_sampler() -> None:
    # The one trial in flight is being sampled (the run's sampler is busy): another worker's
    # ask hears at once that this study has no room, and can be given another study's trial.
    sampler = _SlowSampler()
    run = StudyRun(optuna.create_study(sampler=sampler), n_trials=4, max_concurrent_trials=1)
    run.start()
    reply = ask(run, 1)
    assert reply is not None
    suggesting = threading.Thread(target=suggest_float, args=(run, 1, reply))
    suggesting.start()
    assert sampler.sampling.wait(10)
    answers: list[Any] = []
    asking = threading.Thread(target=lambda: answers.append(run.try_ask(2, WORKER)))
    asking.start()
    asking.join(10)
    sampler.go.set()
    suggesting.join(10)
    assert answers == [Verdict.WAIT]
