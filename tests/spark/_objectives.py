"""Objectives shipped to Spark executors by the tests (module-level so they pickle by name)."""

from __future__ import annotations

import os
import tempfile
import time

import optuna


def quadratic(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", -10, 10)
    trial.set_user_attr("pid", os.getpid())
    return (x - 2) ** 2


def die_once(trial: optuna.trial.BaseTrial, marker: str) -> float:
    """The first trial kills its Python worker mid-trial; the marker file makes it once."""
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    wait_for_retried_attempt(trial)
    time.sleep(0.05)
    return x


def always_dies(trial: optuna.trial.BaseTrial) -> float:
    os._exit(1)


def wait_for_retried_attempt(trial: optuna.trial.BaseTrial, timeout: float = 60.0) -> None:
    """Block until some trial ran in a retried Spark task attempt (or ``timeout`` passes).

    Makes tests about task retries deterministic: the surviving worker cannot finish the
    study before the retried task has started asking for trials.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in trial.study.get_trials(deepcopy=False):
            if t.system_attrs.get("optuna_spark:worker", {}).get("attempt", 0) >= 1:
                return
        time.sleep(0.1)


def upload_a_file(trial: optuna.trial.BaseTrial, store_dir: str) -> float:
    """Writes a file named after the trial and uploads it as an artifact of the trial."""
    import tempfile

    from optuna.artifacts import FileSystemArtifactStore
    from optuna.artifacts import upload_artifact

    x = trial.suggest_float("x", 0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"trial-{trial.number}.txt")
        with open(path, "w") as f:
            f.write(f"x={x}")
        upload_artifact(
            artifact_store=FileSystemArtifactStore(store_dir),
            file_path=path,
            study_or_trial=trial,
        )
    return x


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def leave_a_cycle(trial: optuna.trial.BaseTrial, marker_dir: str) -> float:
    """Leaves a reference cycle behind (with the automatic collector off in this worker) and
    records whether the previous trial's cycle in this process has been collected since."""
    import gc
    import weakref

    gc.disable()
    marker = os.path.join(marker_dir, str(os.getpid()))
    previous = None
    if os.path.exists(marker):
        with open(marker) as f:
            previous = f.read() == "collected"
    trial.set_user_attr("previous_collected", previous)
    cycle = _Cycle()
    with open(marker, "w") as f:
        f.write("alive")

    def collected(path: str = marker) -> None:
        with open(path, "w") as f:
            f.write("collected")

    weakref.finalize(cycle, collected)
    del cycle
    return 0.0


def checkpointed(trial: optuna.trial.BaseTrial, die_at: int, steps: int = 20) -> float:
    """``steps`` steps with a checkpoint after each; the first run of trial 0 kills its
    Python worker right after saving step ``die_at``. Records each run's first step."""
    from optuna_spark import checkpoint

    x = trial.suggest_float("x", 0, 1)
    ckpt = checkpoint.load(trial)  # type: ignore[arg-type]
    start = 0 if ckpt is None else ckpt.step + 1
    trial.set_user_attr("starts", [*trial.user_attrs.get("starts", []), start])
    with tempfile.TemporaryDirectory() as tmp:
        for step in range(start, steps):
            trial.report(x + step, step)
            with open(os.path.join(tmp, "step.txt"), "w") as f:
                f.write(str(step))
            checkpoint.save(trial, tmp, step=step)  # type: ignore[arg-type]
            if ckpt is None and trial.number == 0 and step == die_at:
                os._exit(1)
    return x


def exit_once(study: optuna.Study, trial: optuna.trial.FrozenTrial, marker: str) -> None:
    """A callback that kills its process the first time it runs (with ``coordinator="cluster"``
    callbacks run in task 0: this kills the coordinator)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def per_segment(trial: optuna.trial.BaseTrial) -> float:
    """One model per segment: the study's name says which segment (``segment-<k>``)."""
    segment = int(trial.study.study_name.rsplit("-", 1)[1])
    x = trial.suggest_float("x", -10, 10)
    time.sleep(0.02)  # long enough that the four workers overlap
    return (x - segment) ** 2


def fails_in_bad_segment(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", 0, 1)
    if trial.study.study_name == "bad" and trial.number == 1:
        raise ValueError("no data for this segment")
    return x


def stuck_then_fails_in_bad(trial: optuna.trial.BaseTrial) -> float:
    """In study ``bad``: trial 0 never returns (nor asks ``should_prune``), trial 1 raises."""
    x = trial.suggest_float("x", 0, 1)
    if trial.study.study_name == "bad" and trial.number == 0:
        time.sleep(120)  # stuck: only the driver failing it, and its worker exiting, end it
    if trial.study.study_name == "bad":
        raise ValueError("no data for this segment")
    return x
