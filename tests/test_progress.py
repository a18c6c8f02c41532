"""The progress bar: trials counted by state, the best value, or seconds with only a timeout."""

from __future__ import annotations

import optuna
import pytest

from optuna_spark._spark._pool_progress import PoolProgress
from optuna_spark._spark._progress import ProgressBar
from optuna_spark.remote import RunPool
from optuna_spark.remote import StudyRun
from tests._calls import ask
from tests._calls import tell


def _finish(run: StudyRun, conn: int, outcome: str, value: float | None = None) -> None:
    reply = ask(run, conn)
    assert reply is not None
    tell(run, conn, reply, outcome, value)


def test_trial_bar_counts_states_and_keeps_the_best(capfd: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study(direction="maximize")
    run = StudyRun(study, n_trials=3)
    run.start()
    bar = ProgressBar(run, True, n_workers=2)
    _finish(run, 1, "values", 0.5)
    _finish(run, 1, "pruned")
    _finish(run, 1, "values", 0.9)
    bar.close()
    err = capfd.readouterr().err
    assert "3/3" in err
    assert "done=2 pruned=1 failed=0 best=0.9" in err


def test_timeout_only_bar_counts_seconds(capfd: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study()
    run = StudyRun(study, timeout=30.0)
    run.start()
    bar = ProgressBar(run, True, n_workers=1)
    _finish(run, 1, "values", 2.0)
    bar.close()
    err = capfd.readouterr().err
    assert "0/30 s, done=1" in err
    assert "done=1 pruned=0 failed=0 best=2" in err


def test_disabled_bar_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    run = StudyRun(optuna.create_study(), n_trials=1)
    run.start()
    bar = ProgressBar(run, False, n_workers=1)
    _finish(run, 1, "values", 1.0)
    bar.close()
    assert capfd.readouterr().err == ""


def test_optuna_log_lines_go_above_the_bar_and_back_after(
    capfd: pytest.CaptureFixture[str],
) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO)
    study = optuna.create_study()
    run = StudyRun(study, n_trials=2)
    run.start()
    bar = ProgressBar(run, True, n_workers=1)
    _finish(run, 1, "values", 1.0)  # Optuna logs "Trial 0 finished with value: 1.0 ..."
    captured = capfd.readouterr()
    # As with Study.optimize's own bar: written by tqdm.write (stdout), not into the bar.
    assert "Trial 0 finished with value: 1.0" in captured.out
    assert "Trial 0 finished" not in captured.err
    _finish(run, 1, "values", 2.0)
    bar.close()
    capfd.readouterr()
    optuna.logging.get_logger("optuna.study.study").info("after the bar")
    assert "after the bar" in capfd.readouterr().err  # Optuna's own handler is back


def test_the_rate_counts_from_the_first_trial_not_from_spark_start_up() -> None:
    import time

    study = optuna.create_study()
    run = StudyRun(study, n_trials=10)
    run.start()
    bar = ProgressBar(run, True, n_workers=1)
    assert bar._bar is not None
    bar._bar.start_t -= 600  # as if Spark had taken ten minutes to start the tasks
    bar._bar.last_print_t -= 600
    _finish(run, 1, "values", 1.0)
    assert time.time() - bar._bar.start_t < 60  # dated back to the trial's start
    assert bar._bar.n == 1
    bar.close()


def test_the_pool_bar_shows_a_line_per_study_with_its_best_on_request(
    capfd: pytest.CaptureFixture[str],
) -> None:
    storage = optuna.storages.InMemoryStorage()
    runs = [
        StudyRun(optuna.create_study(study_name=name, storage=storage), n_trials=2)
        for name in ("north", "south")
    ]
    for run in runs:
        run.start()
    bar = PoolProgress(RunPool(runs), True, n_workers=2, per_study=True)
    _finish(runs[0], 1, "values", 3.0)
    _finish(runs[0], 1, "values", 1.5)
    _finish(runs[1], 2, "pruned")
    bar.close()
    err = capfd.readouterr().err
    assert "2 studies [2 workers]" in err and "3/4" in err  # the bar over all studies
    assert "north: 100%" in err and "done=2 pruned=0 failed=0 best=1.5" in err
    assert "south:  50%" in err and "done=0 pruned=1 failed=0" in err


def test_the_pool_bar_alone_has_no_line_per_study(capfd: pytest.CaptureFixture[str]) -> None:
    runs = [StudyRun(optuna.create_study(study_name="only"), n_trials=1)]
    runs[0].start()
    bar = PoolProgress(RunPool(runs), True, n_workers=1)
    _finish(runs[0], 1, "values", 1.0)
    bar.close()
    err = capfd.readouterr().err
    assert "1 study [1 workers]" in err and "best=" not in err
