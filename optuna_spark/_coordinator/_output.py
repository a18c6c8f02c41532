"""What trials' objectives print and log, as the driver keeps it: live to listeners, the last
part on the trial (``optuna_spark:log``), the whole as an artifact when a store is given."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import Any

import optuna
from optuna.storages import BaseStorage

from optuna_spark._coordinator._attrs import ATTR_LOG
from optuna_spark._coordinator._leases import MAX_OUTPUT_CHARS
from optuna_spark._coordinator._leases import Lease

_logger = logging.getLogger(__name__)

__all__ = ["LOG_TAIL_CHARS", "MAX_OUTPUT_CHARS", "get_trial_log", "store_tail", "upload_log"]

#: The most of a trial's output kept on the trial itself (its last part).
LOG_TAIL_CHARS = 64 * 1024


def store_tail(storage: BaseStorage, trial_id: int, lease: Lease) -> None:
    """Keep the last :data:`LOG_TAIL_CHARS` of the trial's output on it (before it ends)."""
    if not lease.output:
        return
    text = "".join(lease.output)
    if len(text) > LOG_TAIL_CHARS:
        cut = len(text) - LOG_TAIL_CHARS
        text = f"[... {cut} earlier characters ...]\n" + text[cut:]
    with contextlib.suppress(Exception):  # the output is a convenience, never a failure
        storage.set_trial_system_attr(trial_id, ATTR_LOG, text)


def upload_log(store: Any, storage: BaseStorage, trial_id: int, number: int, text: str) -> None:
    """Upload the trial's whole output as its artifact ``trial-<number>.log``."""
    with tempfile.TemporaryDirectory(prefix="optuna-spark-log-") as folder:
        path = os.path.join(folder, f"trial-{number}.log")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            optuna.artifacts.upload_artifact(
                artifact_store=store,
                file_path=path,
                study_or_trial=storage.get_trial(trial_id),
                storage=storage,
                mimetype="text/plain",
            )
        except Exception:
            _logger.warning("Could not upload the log of trial %d.", number, exc_info=True)


def get_trial_log(study: optuna.Study, trial_number: int) -> str:
    """What trial ``trial_number``'s objective printed, warned and logged on its worker.

    The last 64 KiB of it (a line says how much came before); the whole of it (up to 1 MiB)
    is also an artifact of the trial when the run was given an artifact store. Empty when
    the objective wrote nothing, or ran in this process.

    Args:
        study: The study, from any storage.
        trial_number: The trial's number.

    Example:

        .. testcode::

            import optuna
            from optuna_spark import get_trial_log

            study = optuna.create_study()
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
            assert get_trial_log(study, 0) == ""  # ran in this process: nothing captured
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
    if not trials:
        raise ValueError(
            f"Study {study.study_name!r} has no trial number {trial_number} (it has "
            f"{len(study.get_trials(deepcopy=False))} trials)."
        )
    return str(trials[0].system_attrs.get(ATTR_LOG, ""))
