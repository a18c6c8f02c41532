"""``coordinator="cluster"`` on a classic session: the run lives in task 0 of the job."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark.wire.spec import RunConfig
from tests._helpers import states_of
from tests.spark import _objectives

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def _record_callback_pid(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    study.set_user_attr("callback_pid", os.getpid())


@pytest.mark.parametrize("kind", ["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_run_and_its_callbacks_live_in_a_task(
    spark: object, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    storage: str | JournalStorage
    if kind == "postgres":
        storage = request.getfixturevalue("postgres_url")
    else:
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage)
    executor = SparkExecutor(spark, n_workers=2, coordinator="cluster")  # type: ignore[arg-type]
    executor.optimize(study, _objectives.quadratic, n_trials=9, callbacks=[_record_callback_pid])
    assert sorted(t.number for t in study.trials) == list(range(9))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    callback_pid = study.user_attrs["callback_pid"]
    assert callback_pid != os.getpid()
    assert callback_pid not in {t.user_attrs["pid"] for t in study.trials}  # not a worker


def test_an_objectives_error_is_raised_here(spark: object, tmp_path: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage)

    def objective(trial: optuna.trial.BaseTrial) -> float:
        raise LookupError(f"nothing for trial {trial.number}")

    executor = SparkExecutor(spark, n_workers=2, coordinator="cluster")  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="nothing for trial") as info:
        executor.optimize(study, objective, n_trials=5)
    assert "objective" in str(info.value.__cause__)  # the worker's traceback
    assert all(t.state == TrialState.FAIL for t in study.trials)


def test_a_coordinator_that_cannot_start_reports_why(tmp_path: Path) -> None:
    # Task 0's own code, run here (no TaskContext: a first attempt): the run refuses to
    # start, and the record carries that error to the client instead of a lost task.
    from optuna_spark._spark._cluster_task import ClusterSpec
    from optuna_spark._spark._cluster_task import ClusterStudy
    from optuna_spark._spark._cluster_task import make_cluster_task
    from optuna_spark._spark._cluster_task import read_record
    from optuna_spark._spark._cluster_task import record_error

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.GridSampler({"x": [0]}))
    config = RunConfig(n_trials=1, sampling="workers")  # refused for a GridSampler
    spec = ClusterSpec(
        call_id="c0",
        token="t",
        storage=storage,
        studies=(ClusterStudy(study.study_name, study.sampler, study.pruner, config),),
        n_workers=1,
        heartbeat_interval=1.0,
        stuck_grace=1.0,
        exit_if_stuck_after=None,
    )
    assert list(make_cluster_task(spec, _objectives.quadratic, ())(iter([0]))) == [0]
    record = read_record(storage, storage.get_study_id_from_name(study.study_name), "c0")
    assert record is not None and record.state == "done" and record.cancel
    error = record_error(record)
    assert isinstance(error, ValueError)
    assert "GridSampler cannot sample on the workers" in str(error)
    assert study.trials == []


def test_a_lost_coordinator_task_is_replaced_and_the_run_completes(
    spark: object, tmp_path: Path
) -> None:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    executor = SparkExecutor(
        spark,  # type: ignore[arg-type]
        n_workers=2,
        coordinator="cluster",
        resume_lost_trials=1,
    )
    kill = functools.partial(_objectives.exit_once, marker=str(tmp_path / "killed"))
    objective = functools.partial(_objectives.checkpointed, die_at=-1, steps=10)
    executor.optimize(study, objective, n_trials=6, callbacks=[kill])  # returns, no error
    assert (tmp_path / "killed").exists()
    trials = study.trials
    assert len(trials) == 6  # n_trials is exact across the two coordinators
    for t in trials:
        if t.state == TrialState.FAIL:  # running, without a checkpoint, when task 0 died
            assert t.system_attrs["optuna_spark:fail_reason"].startswith("driver lost")
        else:
            assert t.state == TrialState.COMPLETE
            for resume in t.system_attrs.get("optuna_spark:resumes", []):
                assert resume["reason"].startswith("driver lost")
    # At most the two workers' trials were lost with the coordinator, those of them without a
    # checkpoint yet failed; every other trial completed.
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 4
    # Each trial names the run that created it (a trial asked just before task 0 died may
    # never have reached a worker, so it has no worker record): the replacement made the rest.
    runs = {t.system_attrs["optuna_spark:run"] for t in trials}
    assert len(runs) == 2


def _journal(tmp_path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))


def test_many_studies_are_served_by_one_coordinator_task(
    spark: object, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    storage = _journal(tmp_path)
    studies = [optuna.create_study(study_name=f"segment-{k}", storage=storage) for k in range(3)]
    executor = SparkExecutor(spark, n_workers=2, coordinator="cluster")  # type: ignore[arg-type]
    executor.optimize_many(
        studies,
        _objectives.quadratic,
        n_trials={"segment-0": 2, "segment-1": 3, "segment-2": 4},
        max_concurrent_trials=1,
        callbacks=[_record_callback_pid],
        show_progress_bar="studies",
    )
    assert [states_of(s) for s in studies] == [{"COMPLETE": n} for n in (2, 3, 4)]
    callback_pids = {s.user_attrs["callback_pid"] for s in studies}
    worker_pids = {t.user_attrs["pid"] for s in studies for t in s.trials}
    assert len(callback_pids) == 1 and os.getpid() not in callback_pids | worker_pids
    assert not callback_pids & worker_pids  # one coordinator task served them all
    runs = {t.system_attrs["optuna_spark:run"] for s in studies for t in s.trials}
    assert len(runs) == 3  # one run per study, in that task
    err = capfd.readouterr().err
    assert "3 studies [2 workers]" in err and "segment-2: 100%" in err  # followed here


def test_one_studys_error_in_the_cluster_is_raised_here_naming_it(
    spark: object, tmp_path: Path
) -> None:
    storage = _journal(tmp_path)
    good, bad = (optuna.create_study(study_name=n, storage=storage) for n in ("good", "bad"))
    executor = SparkExecutor(spark, n_workers=2, coordinator="cluster")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no data for this segment") as info:
        executor.optimize_many([good, bad], _objectives.fails_in_bad_segment, n_trials=6)
    assert "study 'bad'" in " ".join(getattr(info.value, "__notes__", []))
    assert states_of(good) == {"COMPLETE": 6}
    assert bad.trials[1].state == TrialState.FAIL


def test_a_lost_coordinator_of_many_studies_is_replaced_and_each_study_completes(
    spark: object, tmp_path: Path
) -> None:
    storage = _journal(tmp_path)
    studies = [
        optuna.create_study(
            study_name=f"segment-{k}", storage=storage, sampler=optuna.samplers.RandomSampler(k)
        )
        for k in range(2)
    ]
    executor = SparkExecutor(
        spark,  # type: ignore[arg-type]
        n_workers=2,
        coordinator="cluster",
        resume_lost_trials=1,
    )
    kill = functools.partial(_objectives.exit_once, marker=str(tmp_path / "killed"))
    objective = functools.partial(_objectives.checkpointed, die_at=-1, steps=10)
    executor.optimize_many(studies, objective, n_trials=4, callbacks=[kill])
    assert (tmp_path / "killed").exists()
    for study in studies:  # n_trials is exact per study across the two coordinators
        assert len(study.trials) == 4, study.study_name
        assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in study.trials)
    runs = {t.system_attrs["optuna_spark:run"] for s in studies for t in s.trials}
    assert len(runs) >= 3  # each study's run in the first task, then in its replacement
    assert sum(t.state == TrialState.COMPLETE for s in studies for t in s.trials) >= 6


class _PidSampler(optuna.samplers.RandomSampler):
    """Records on each trial the process that sampled its parameters."""

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        study._storage.set_trial_user_attr(trial._trial_id, "sampled_in", os.getpid())
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_many_studies_sample_on_the_workers_of_a_cluster_coordinator(
    spark: object, tmp_path: Path
) -> None:
    storage = _journal(tmp_path)
    studies = [
        optuna.create_study(study_name=f"segment-{k}", storage=storage, sampler=_PidSampler(k))
        for k in range(2)
    ]
    executor = SparkExecutor(spark, n_workers=2, coordinator="cluster", sampling="workers")  # type: ignore[arg-type]
    executor.optimize_many(studies, _objectives.quadratic, n_trials=5)
    assert [states_of(s) for s in studies] == [{"COMPLETE": 5}] * 2
    for trial in (t for s in studies for t in s.trials):  # sampled where it ran
        assert trial.user_attrs["sampled_in"] == trial.user_attrs["pid"] != os.getpid()
