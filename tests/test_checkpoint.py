"""optuna_spark.checkpoint in-process (plain study.optimize) and its errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from optuna_spark import CheckpointError
from optuna_spark import checkpoint
from optuna_spark._optuna_adapter import storage_of
from optuna_spark._optuna_adapter import trial_id_of
from optuna_spark.remote import RemoteTrial


def test_a_directory_and_a_file_round_trip_and_only_the_latest_is_kept(tmp_path: Path) -> None:
    store = FileSystemArtifactStore(str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    seen = []

    def objective(trial: optuna.Trial) -> float:
        assert checkpoint.load(trial, store=store) is None  # a first run has none
        for step in range(3):
            (src / "weights.bin").write_bytes(bytes([step]) * 1000)
            (src / "sub" / "meta.txt").write_text(f"step {step}")
            checkpoint.save(trial, src, step=step, store=store)
        ckpt = checkpoint.load(trial, store=store)
        assert ckpt is not None
        seen.append(ckpt.step)
        assert (ckpt.path / "weights.bin").read_bytes() == bytes([2]) * 1000
        assert (ckpt.path / "sub" / "meta.txt").read_text() == "step 2"
        checkpoint.save(trial, src / "weights.bin", step=3, store=store)  # one file
        ckpt = checkpoint.load(trial, store=store)
        assert ckpt is not None and ckpt.step == 3
        assert sorted(p.name for p in ckpt.path.iterdir()) == ["weights.bin"]
        return 0.0

    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    assert seen == [2]
    record = study.trials[0].system_attrs["optuna_spark:checkpoint"]
    assert record["step"] == 3 and record["bytes"] == 1000
    assert [p.name for p in (tmp_path / "store").iterdir()] == [record["artifact_id"]]


def test_without_a_store_in_process_checkpoints_go_to_the_default_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "state.txt").write_text("hello")
    study = optuna.create_study()
    trial = study.ask()
    checkpoint.save(trial, tmp_path / "state.txt", step=0)
    ckpt = checkpoint.load(trial)
    assert ckpt is not None and (ckpt.path / "state.txt").read_text() == "hello"
    artifact_id = study.trials[0].system_attrs["optuna_spark:checkpoint"]["artifact_id"]
    assert (checkpoint.DEFAULT_DIR / artifact_id).exists()
    (checkpoint.DEFAULT_DIR / artifact_id).unlink()


@pytest.mark.parametrize("step", [-1, 1.5, "3", None])
def test_a_bad_step_is_refused(step: object, tmp_path: Path) -> None:
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        checkpoint.save(trial, tmp_path, step=step)  # type: ignore[arg-type]


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    trial = optuna.create_study().ask()
    with pytest.raises(FileNotFoundError, match=r"nothing\.bin"):
        checkpoint.save(trial, tmp_path / "nothing.bin", step=0)


def test_a_worker_of_a_run_without_a_store_is_told_which_option_to_set(tmp_path: Path) -> None:
    trial = RemoteTrial.__new__(RemoteTrial)
    trial._checkpoint_store = None  # what run_worker makes for a run without checkpoint_store
    with pytest.raises(CheckpointError, match="pass checkpoint_store= to SparkExecutor"):
        checkpoint.save(trial, tmp_path, step=0)


def test_an_archive_that_escapes_its_directory_is_refused(tmp_path: Path) -> None:
    # A checkpoint is read back from a store others may write to: nothing lands outside the
    # directory it is restored into.
    store = FileSystemArtifactStore(str(tmp_path))
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    payload.seek(0)
    store.write("evil", payload)
    study = optuna.create_study()
    trial = study.ask()
    record = {"artifact_id": "evil", "step": 0}
    storage_of(study).set_trial_system_attr(trial_id_of(trial), checkpoint.ATTR_CHECKPOINT, record)
    with pytest.raises(tarfile.TarError):
        checkpoint.load(trial, store=store)
    assert not any(p.name == "escaped.txt" for p in Path("/tmp").iterdir())


def test_a_checkpoint_missing_from_its_store_restarts_the_trial_rather_than_failing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study()
    trial = study.ask()
    record = {"artifact_id": "gone", "step": 4}
    storage_of(study).set_trial_system_attr(trial_id_of(trial), checkpoint.ATTR_CHECKPOINT, record)
    assert checkpoint.load(trial, store=store) is None
    assert "not in its store any more" in caplog.text


class _WorkerTrial:
    """A worker's trial whose run answers ``set_checkpoint`` with ``error``."""

    def __init__(self, study: optuna.Study, store: object, error: BaseException) -> None:
        inner = study.ask()
        self.storage, self.number = storage_of(study), inner.number
        self._trial_id = trial_id_of(inner)
        self._store, self._error = store, error

    @property
    def checkpoint_store(self) -> object:  # as a worker's trial has it
        return self._store

    def set_checkpoint(self, record: dict[str, object]) -> None:
        raise self._error


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (optuna.exceptions.UpdateFinishedTrialError("it resumes on another worker"), False),
        (ConnectionResetError("the driver went away with the answer"), True),
    ],
)
def test_an_upload_is_removed_only_when_the_run_surely_refused_it(
    tmp_path: Path, error: BaseException, kept: bool
) -> None:
    # A refusal leaves no orphan file; a lost answer may mean the record names the upload.
    store = FileSystemArtifactStore(str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    (tmp_path / "state.txt").write_text("x")
    trial = _WorkerTrial(optuna.create_study(), store, error)
    with pytest.raises(type(error)):
        checkpoint.save(trial, tmp_path / "state.txt", step=1)  # type: ignore[arg-type]
    assert bool(list((tmp_path / "store").iterdir())) is kept
