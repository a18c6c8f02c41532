"""Save and load a running trial's checkpoint, wherever the objective runs."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import operator
import os
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.checkpoint import _files
from optuna_spark.exceptions import CheckpointError

_logger = logging.getLogger(__name__)

#: On a trial: its latest checkpoint, ``{"artifact_id", "step", "bytes", "saved_at"}``.
ATTR_CHECKPOINT = "optuna_spark:checkpoint"
#: On a trial: the id of the trial whose checkpoint it starts from until it saves its own
#: (a Population Based Training segment starts from its parent's).
ATTR_STARTS_FROM = "optuna_spark:checkpoint_from"
#: On a trial: keep its last checkpoint once it has finished (others may start from it).
ATTR_KEEP = "optuna_spark:keep_checkpoint"

#: Where checkpoints go when no store is given, in-process and on an embedded (local) Spark
#: session: a directory of this machine's temporary directory.
DEFAULT_DIR = Path(tempfile.gettempdir()) / "optuna-spark-checkpoints"

_NO_STORE = (
    "This optimization has no checkpoint store, so checkpoints cannot be saved on its "
    "workers: pass checkpoint_store= to SparkExecutor (or to RunConfig / StudyRun) with an "
    "Optuna artifact store every worker reaches, for example "
    "optuna.artifacts.FileSystemArtifactStore on a shared path, or Boto3ArtifactStore."
)


#: The trials whose objective saved or loaded a checkpoint in this process (the worker loop
#: removes a finished trial's checkpoint only then: no request for the others).
_used: weakref.WeakSet[optuna.Trial] = weakref.WeakSet()


def used(trial: optuna.Trial) -> bool:
    """Whether ``trial``'s objective saved or loaded a checkpoint in this process."""
    return trial in _used


class HandBack(BaseException):
    """Raised by :func:`save` once the checkpoint is recorded, when the trial's executor is
    being decommissioned: the worker hands the trial back (it resumes on another worker).

    A ``BaseException``, so that an objective's ``except Exception`` does not stop it.
    """

    def __init__(self, step: int) -> None:
        super().__init__(f"checkpoint saved at step {step}; the trial resumes elsewhere")
        self.step = step


def requested(trial: optuna.Trial) -> bool:
    """Whether ``trial``'s executor is being decommissioned (a spot instance's notice, a
    scale-down), so that the objective saves now: the next :func:`save` hands the trial back,
    and it resumes on another worker with nothing lost. Always ``False`` in-process."""
    return bool(getattr(trial, "save_requested", False))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The latest checkpoint of a trial, restored on this machine.

    Attributes:
        path: A local directory holding what was saved: the saved directory's contents, or
            the saved file under its own name.
        step: The step it was saved at.
    """

    path: Path
    step: int


def default_store() -> FileSystemArtifactStore:
    """The store used when none is given: :data:`DEFAULT_DIR` on this machine."""
    DEFAULT_DIR.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(DEFAULT_DIR))


def store_for(trial: optuna.Trial, store: Any = None) -> Any:
    """The artifact store ``trial``'s checkpoints go to.

    ``store`` when given; on a worker of a distributed run, the run's ``checkpoint_store``
    (an error when it has none); in-process (plain ``study.optimize``), :func:`default_store`.
    """
    if store is not None:
        return store
    # A worker's trial says which store its run uses; a plain optuna.Trial has no such thing.
    if hasattr(type(trial), "checkpoint_store"):
        configured = trial.checkpoint_store  # type: ignore[attr-defined]
        if configured is None:
            raise CheckpointError(_NO_STORE)
        return configured
    return default_store()


def save(
    trial: optuna.Trial, path: str | os.PathLike[str], *, step: int, store: Any = None
) -> None:
    """Save ``path`` (a file or a directory) as ``trial``'s latest checkpoint, at ``step``.

    The files are uploaded to the artifact store as one artifact, the trial records it
    (system attribute ``optuna_spark:checkpoint``), and only then is the previous checkpoint
    removed: a worker lost in the middle leaves the trial with one whole checkpoint.

    Args:
        trial: The running trial (``optuna.Trial`` in-process, the worker's trial on Spark).
        path: What to save; read once, before this returns.
        step: The step (epoch) it was saved at; :func:`load` returns it.
        store: An Optuna artifact store to use instead of the run's (or the default).

    When the trial's executor is being decommissioned (:func:`requested`), ``save`` ends the
    objective once the checkpoint is recorded, and the trial resumes on another worker.

    Raises:
        CheckpointError: On a worker of a run that has no checkpoint store.
        FileNotFoundError: ``path`` does not exist.
    """
    step = _check_step(step)
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(
            f"Nothing to save as a checkpoint: {str(source)!r} does not exist."
        )
    target = store_for(trial, store)
    _used.add(trial)
    storage, trial_id = trial.storage, optuna_adapter.trial_id_of(trial)
    previous = storage.get_trial_system_attrs(trial_id).get(ATTR_CHECKPOINT)
    artifact_id = f"checkpoint-{trial.number}-{step}-{uuid.uuid4().hex}"
    with _files.pack(source) as packed:
        target.write(artifact_id, packed)
    record: dict[str, Any] = {
        "artifact_id": artifact_id,
        "step": step,
        "bytes": _files.size_of(source),
        "saved_at": datetime.datetime.now().isoformat(),
    }
    try:
        if hasattr(type(trial), "set_checkpoint"):  # a worker's trial: through its run
            trial.set_checkpoint(record)  # type: ignore[attr-defined]
        else:
            storage.set_trial_system_attr(trial_id, ATTR_CHECKPOINT, record)
    except (OSError, KeyboardInterrupt):
        # The outcome is unknown (the connection went down with the answer on its way): the
        # record may name the new checkpoint, which must then stay.
        raise
    except BaseException:
        _remove(target, artifact_id)  # refused (the trial moved on): keep no orphan
        raise
    if isinstance(previous, dict) and previous.get("artifact_id"):
        _remove(target, str(previous["artifact_id"]))
    if requested(trial):
        raise HandBack(step)


def load(trial: optuna.Trial, *, store: Any = None) -> Checkpoint | None:
    """The latest checkpoint of ``trial``, restored into a new local directory; ``None`` when
    it has none (its first run, or the objective never saved one).

    A trial that resumes after its worker was lost (``resume_lost_trials``) gets the last
    checkpoint its earlier run saved. A trial that starts from another's checkpoint (a
    Population Based Training segment, :class:`optuna_spark.pbt.PBTSampler`) gets that one
    until it has saved its own.
    """
    _used.add(trial)
    storage = trial.storage
    attrs = storage.get_trial_system_attrs(optuna_adapter.trial_id_of(trial))
    record = attrs.get(ATTR_CHECKPOINT)
    source = attrs.get(ATTR_STARTS_FROM)
    if not isinstance(record, dict) and isinstance(source, int):
        record = storage.get_trial_system_attrs(source).get(ATTR_CHECKPOINT)
    if not isinstance(record, dict) or not record.get("artifact_id"):
        return None
    target = store_for(trial, store)
    try:
        with target.open_reader(str(record["artifact_id"])) as reader:
            path = _files.unpack(reader, prefix=f"optuna-spark-checkpoint-{trial.number}-")
    except ArtifactNotFound:
        _logger.warning(
            "The checkpoint of trial %d (step %s) is not in its store any more; the trial "
            "starts again from its beginning.",
            trial.number,
            record.get("step"),
        )
        return None
    return Checkpoint(path, int(record["step"]))


def remove(trial: FrozenTrial, store: Any) -> None:
    """Remove the checkpoint of the finished ``trial`` from ``store`` (if it has one, and
    nothing asked to keep it: :data:`ATTR_KEEP`)."""
    if not trial.system_attrs.get(ATTR_KEEP):
        remove_kept(trial, store)


def has_checkpoint(trial: FrozenTrial) -> bool:
    """Whether ``trial`` recorded a checkpoint."""
    record = trial.system_attrs.get(ATTR_CHECKPOINT)
    return isinstance(record, dict) and bool(record.get("artifact_id"))


def remove_kept(trial: FrozenTrial, store: Any) -> bool:
    """Remove the checkpoint of the finished ``trial`` from ``store`` even when it was kept
    (:data:`ATTR_KEEP`); whether there was one to remove. Its record stays on the trial (a
    finished trial's attributes cannot change)."""
    record = trial.system_attrs.get(ATTR_CHECKPOINT)
    if not isinstance(record, dict) or not record.get("artifact_id"):
        return False
    return _remove(store, str(record["artifact_id"]))


def _remove(store: Any, artifact_id: str) -> bool:
    """Remove one artifact; whether it was there (an error is logged, not raised)."""
    try:
        store.remove(artifact_id)
    except ArtifactNotFound:
        return False  # removed already (by the trial's run on another worker, say)
    except Exception as e:  # a stale file costs space, not correctness
        _logger.warning("Could not remove the checkpoint %s: %r", artifact_id, e)
        return False
    return True


def _check_step(step: object) -> int:
    with contextlib.suppress(TypeError):
        index = operator.index(step)  # type: ignore[arg-type]
        if index >= 0:
            return index
    raise ValueError(f"step must be a non-negative int, but got {step!r}.")
