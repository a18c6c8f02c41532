"""Population Based Training on Spark workers: segments from one another's checkpoints, the
study ends by itself, and the lineage is on the trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from optuna_spark import SparkExecutor
from optuna_spark.checkpoint import ATTR_CHECKPOINT
from optuna_spark.pbt import PBTSampler
from optuna_spark.pbt import get_segment
from optuna_spark.pbt import pbt_report
from tests.pbt import _toy

pytestmark = [pytest.mark.spark, pytest.mark.timeout(240)]


def test_a_population_trains_on_four_workers_from_its_checkpoints(
    spark: object, tmp_path: Path
) -> None:
    store = FileSystemArtifactStore(str(tmp_path))
    sampler = PBTSampler(population_size=4, n_generations=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    executor = SparkExecutor(
        spark,  # type: ignore[arg-type]
        n_workers=4,
        checkpoint_store=store,
        resume_lost_trials=1,
    )
    executor.optimize(study, _toy.train)  # no n_trials: the population ends the study
    trials = study.trials
    assert len(trials) <= 12 and all(t.state == TrialState.COMPLETE for t in trials)
    by_number = {t.number: t for t in trials}
    for trial in trials:
        segment = get_segment(trial)
        assert segment is not None
        if segment.parent is None:
            assert segment.generation == 0 and trial.user_attrs["loaded_step"] is None
        else:  # loaded on its worker: the checkpoint its parent saved on another
            parent = by_number[segment.parent]
            assert trial.user_attrs["loaded_step"] == parent.system_attrs[ATTR_CHECKPOINT]["step"]
    # Every segment's checkpoint is kept (later segments may start from any of them).
    assert all(ATTR_CHECKPOINT in t.system_attrs for t in trials)
    assert len(list(tmp_path.iterdir())) == len(trials)
    assert len(pbt_report(study).schedule) == 3  # the best model: three segments


def test_pbt_stays_on_the_driver() -> None:
    study = optuna.create_study(sampler=PBTSampler(population_size=2, n_generations=2))
    with pytest.raises(ValueError, match="cannot sample on the workers"):
        SparkExecutor(sampling="workers").optimize(study, _toy.train)
