"""What objectives and ``optimize`` calls written for ``Study.optimize`` rely on, on Spark."""

from __future__ import annotations

import functools
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
from optuna.artifacts import get_all_artifact_meta

from optuna_spark import SparkExecutor
from optuna_spark import get_trial_log
from tests.spark import _objectives

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def test_artifacts_uploaded_by_objectives_belong_to_their_trials(
    executor: SparkExecutor, tmp_path: Path
) -> None:
    store_dir = tmp_path / "artifacts"
    store_dir.mkdir()
    study = optuna.create_study()
    objective = functools.partial(_objectives.upload_a_file, store_dir=str(store_dir))
    executor.optimize(study, objective, n_trials=4)

    store = FileSystemArtifactStore(str(store_dir))
    for trial in study.trials:
        (meta,) = get_all_artifact_meta(trial, storage=study._storage)
        assert meta.filename == f"trial-{trial.number}.txt"
        assert meta.mimetype == "text/plain"
        download_artifact(
            artifact_store=store,
            artifact_id=meta.artifact_id,
            file_path=str(tmp_path / f"{trial.number}.txt"),
        )
        assert (tmp_path / f"{trial.number}.txt").read_text() == f"x={trial.params['x']}"


@pytest.mark.parametrize("gc_after_trial", [True, False])
def test_gc_after_trial_collects_on_the_worker_after_each_trial(
    spark: object, tmp_path: Path, gc_after_trial: bool
) -> None:
    study = optuna.create_study()
    objective = functools.partial(_objectives.leave_a_cycle, marker_dir=str(tmp_path))
    executor = SparkExecutor(spark, n_workers=1)  # type: ignore[arg-type]
    executor.optimize(study, objective, n_trials=4, gc_after_trial=gc_after_trial)
    seen = [t.user_attrs["previous_collected"] for t in study.trials]
    assert seen == [None] + [gc_after_trial] * 3  # one worker: every trial in one process


def _prints(trial: optuna.trial.BaseTrial) -> float:
    print(f"epoch 1 of trial {trial.number}")
    return trial.suggest_float("x", 0, 1)


@pytest.mark.parametrize("log_to_driver", [True, False])
def test_what_objectives_print_is_echoed_on_the_driver(
    spark: object, capfd: pytest.CaptureFixture[str], log_to_driver: bool
) -> None:
    study = optuna.create_study()
    executor = SparkExecutor(spark, n_workers=2, log_to_driver=log_to_driver)  # type: ignore[arg-type]
    executor.optimize(study, _prints, n_trials=3, show_progress_bar=True)
    err = capfd.readouterr().err
    for n in range(3):
        assert (f"[trial {n}] epoch 1 of trial {n}" in err) is log_to_driver
        # Kept on the trial either way.
        assert get_trial_log(study, n) == f"epoch 1 of trial {n}\n"


# optuna-integration deprecates its MLflowCallback (4.9); what is tested here is that such a
# callback, written for Study.optimize, works unchanged on the driver. MLflow's SQL store warns
# about its own use of SQLAlchemy.
@pytest.mark.filterwarnings("ignore:MLflowCallback has been deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_mlflow_callback_logs_each_trial_from_the_driver(
    executor: SparkExecutor, tmp_path: Path
) -> None:
    import mlflow
    from optuna_integration.mlflow import MLflowCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    callback = MLflowCallback(tracking_uri=uri, metric_name="loss")
    study = optuna.create_study(study_name="tracked")
    executor.optimize(study, _objectives.quadratic, n_trials=4, callbacks=[callback])

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tracked"])
    assert len(runs) == 4
    by_x = dict(zip(runs["params.x"].astype(float), runs["metrics.loss"], strict=True))
    assert by_x == pytest.approx({t.params["x"]: t.value for t in study.trials})
