"""Removing the segment checkpoints that no later segment can start from."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_spark.checkpoint._api import default_store
from optuna_spark.checkpoint._api import remove_kept
from optuna_spark.pbt import _population as p


def remove_superseded_checkpoints(study: optuna.Study, *, store: Any = None) -> list[int]:
    """Remove the checkpoints of a :class:`PBTSampler` study's segments that no later
    segment can start from, and return those segments' trial numbers.

    A new segment starts from its member's latest scored segment or, on an exploit, from
    another member's latest; a failed segment runs again from where it started. So each
    member's latest scored checkpoint (the best model is one of them) and the one its
    failed last segment started from are kept, and every other segment's is removed: a
    population of ``P`` members keeps about ``P`` checkpoints instead of one per segment.
    The trials keep their records (and :func:`pbt_report` its lineage); a checkpoint
    removed is gone for :func:`optuna_spark.checkpoint.load` too.

    Run it between runs of the study (a running segment may have been handed a checkpoint
    this call does not see yet).

    Args:
        study: The PBT study, with no segment running or waiting.
        store: The artifact store the checkpoints are in (the run's ``checkpoint_store``;
            default: :func:`optuna_spark.checkpoint.default_store`, where in-process and
            embedded runs keep them).

    Raises:
        ValueError: The study has no PBT segment, or some are running or waiting (a stopped
            driver leaves its segments running until a new run resumes them).

    Example:

        .. testcode::

            import pathlib
            import tempfile

            import optuna
            from optuna_spark import checkpoint
            from optuna_spark.pbt import PBTSampler, remove_superseded_checkpoints

            def objective(trial):
                lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
                start = checkpoint.load(trial)  # its parent's; None at first
                w = 0.0 if start is None else float((start.path / "w.txt").read_text())
                w += lr * (1.0 - w)
                with tempfile.TemporaryDirectory() as tmp:
                    pathlib.Path(tmp, "w.txt").write_text(repr(w))
                    checkpoint.save(trial, tmp, step=0)
                return w

            sampler = PBTSampler(population_size=4, n_generations=3, seed=0)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective)
            removed = remove_superseded_checkpoints(study)
            assert len(removed) == len(study.trials) - 4  # each member's latest stays
    """
    segments = [
        t for t in study.get_trials(deepcopy=False) if isinstance(t.user_attrs.get(p.MEMBER), int)
    ]
    if not segments:
        raise ValueError(
            f"Study {study.study_name!r} has no Population Based Training segment: run it "
            "with PBTSampler."
        )
    busy = [t.number for t in segments if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if busy:
        raise ValueError(
            f"Segments {busy} of study {study.study_name!r} are running or waiting: remove "
            "checkpoints between runs, once they have finished (resume the study first if "
            "its driver stopped)."
        )
    size = max(int(t.user_attrs[p.MEMBER]) for t in segments) + 1
    keep: set[int] = set()
    for member in p.Population.of(segments, size, 1).members:
        if member.scored is not None:
            keep.add(member.scored.number)  # what it continues from, or others copy
        last = member.last
        start = None if last is None else last.user_attrs.get(p.PARENT)
        if last is not None and p.score_of(last) is None and isinstance(start, int):
            keep.add(start)  # where its failed segment runs again from
    target = default_store() if store is None else store
    return [t.number for t in segments if t.number not in keep and remove_kept(t, target)]
