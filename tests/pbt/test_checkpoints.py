"""remove_superseded_checkpoints: what no later segment can start from goes, what one can
start from stays, and a study goes on from what stayed."""

from __future__ import annotations

import io
import math
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from optuna_spark.checkpoint._api import ATTR_CHECKPOINT
from optuna_spark.pbt import PBTSampler
from optuna_spark.pbt import remove_superseded_checkpoints
from tests.pbt import _toy

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _checkpoints_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna_spark.checkpoint import _api

    monkeypatch.setattr(_api, "DEFAULT_DIR", tmp_path / "checkpoints")


def test_each_members_latest_and_what_a_failed_segment_restarts_from_stay(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    store = FileSystemArtifactStore(str(tmp_path / "store"))
    # (member, parent, state, value): member 1 exploited member 0's first segment (#0) and
    # failed; it will run again from #0, although member 0 has moved on to #2.
    plan = [
        (0, None, TrialState.COMPLETE, 0.5),
        (1, None, TrialState.COMPLETE, 0.9),
        (0, 0, TrialState.COMPLETE, 0.6),
        (1, 0, TrialState.FAIL, None),
        (2, None, TrialState.COMPLETE, 0.1),
        (2, 4, TrialState.COMPLETE, 0.2),
    ]
    study = optuna.create_study(direction="maximize")
    for number, (member, parent, state, value) in enumerate(plan):
        store.write(f"ckpt-{number}", io.BytesIO(b"weights"))
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params={"lr": 0.1},
                distributions={"lr": FloatDistribution(1e-3, 1.0, log=True)},
                user_attrs={"pbt:member": member, "pbt:generation": 0, "pbt:parent": parent},
                system_attrs={ATTR_CHECKPOINT: {"artifact_id": f"ckpt-{number}", "step": 0}},
            )
        )
    removed = remove_superseded_checkpoints(study, store=store)
    assert removed == [3, 4]  # the failed segment's own, and member 2's older one
    left = sorted(f.name for f in (tmp_path / "store").iterdir())
    assert left == ["ckpt-0", "ckpt-1", "ckpt-2", "ckpt-5"]
    assert remove_superseded_checkpoints(study, store=store) == []  # nothing more to remove


def test_a_study_goes_on_from_the_checkpoints_that_stayed(tmp_path: Path) -> None:
    study = optuna.create_study(
        direction="maximize", sampler=PBTSampler(population_size=4, n_generations=3, seed=0)
    )
    study.optimize(_toy.train)
    first = len(study.trials)
    removed = remove_superseded_checkpoints(study)
    assert len(removed) == first - 4  # one checkpoint per member stays
    assert len(list((tmp_path / "checkpoints").iterdir())) == 4
    study.sampler = PBTSampler(population_size=4, n_generations=5, seed=1)  # train on
    study.optimize(_toy.train)
    later = study.trials[first:]
    assert later and all(t.state == TrialState.COMPLETE for t in later)
    # Every new segment started from a model, none from scratch: the checkpoints it needed
    # were all there.
    assert all(t.user_attrs["loaded_step"] is not None for t in later)


def test_it_refuses_while_segments_run_and_on_other_studies() -> None:
    study = optuna.create_study(sampler=PBTSampler(population_size=2, n_generations=2))
    study.ask()  # a segment handed out, not finished
    with pytest.raises(ValueError, match=r"Segments \[0\] .* are running or waiting"):
        remove_superseded_checkpoints(study)
    with pytest.raises(ValueError, match="no Population Based Training segment"):
        remove_superseded_checkpoints(optuna.create_study())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_removing_after_every_segment_never_takes_a_checkpoint_a_later_one_needs(
    seed: int,
) -> None:
    import pathlib
    import random
    import tempfile

    from optuna_spark import checkpoint
    from optuna_spark.pbt import get_segment

    rng = random.Random(seed)
    started_from_scratch: list[int] = []  # segments with a parent that found no checkpoint

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        segment = get_segment(trial)
        assert segment is not None
        start = checkpoint.load(trial)
        if segment.parent is not None and start is None:
            started_from_scratch.append(trial.number)
        w = 0.0 if start is None else float((start.path / "w.txt").read_text())
        w += lr * (1.0 - w)
        luck = rng.random()  # failures before and after saving, prunes, NaN
        if luck < 0.1:
            raise RuntimeError("lost before saving")
        with tempfile.TemporaryDirectory() as tmp:
            pathlib.Path(tmp, "w.txt").write_text(repr(w))
            checkpoint.save(trial, tmp, step=segment.generation)
        if luck < 0.2:
            raise RuntimeError("lost after saving")
        if luck < 0.27:
            trial.report(w, step=segment.generation)
            raise optuna.TrialPruned()
        if luck < 0.3:
            raise optuna.TrialPruned()  # with nothing reported: no score
        return math.nan if luck < 0.33 else w

    removed: list[int] = []

    def remove(study: optuna.Study, trial: object) -> None:
        removed.extend(remove_superseded_checkpoints(study))

    study = optuna.create_study(
        direction="maximize",
        sampler=PBTSampler(population_size=5, n_generations=6, quantile=0.4, seed=seed),
    )
    study.optimize(objective, callbacks=[remove], catch=(RuntimeError,))
    study.sampler = PBTSampler(population_size=5, n_generations=9, quantile=0.4, seed=seed + 1)
    study.optimize(objective, callbacks=[remove], catch=(RuntimeError,))
    assert len(removed) > len(study.trials) // 2  # most went as the population moved on
    assert started_from_scratch == []
