"""Where trials' parameters are sampled: ``sampling="driver"`` or ``"workers"``."""

from __future__ import annotations

import sys
from typing import Literal

from optuna.samplers import BaseSampler
from optuna.samplers import BruteForceSampler
from optuna.samplers import GridSampler

Sampling = Literal["driver", "workers"]
SAMPLING_PLACES: tuple[Sampling, ...] = ("driver", "workers")


def check_sampling(sampling: object, sampler: BaseSampler) -> None:
    """Refuse a placement that does not exist, or a sampler that must stay on the driver.

    Samplers that hand out each point of a finite set once and end the study when all are
    done (``GridSampler``, ``BruteForceSampler``, ``LOCOSampler``) need one instance that sees
    every hand-out: copies on the workers would repeat points.
    """
    if sampling not in SAMPLING_PLACES:
        raise ValueError(f"sampling must be 'driver' or 'workers', but got {sampling!r}.")
    if sampling == "driver":
        return
    why = _central_only(sampler)
    if why is not None:
        raise ValueError(
            f"{type(sampler).__name__} cannot sample on the workers: {why}, so copies on the "
            "workers would repeat points. Use sampling='driver' (the default) with it."
        )


def _central_only(sampler: BaseSampler) -> str | None:
    if isinstance(sampler, (GridSampler, BruteForceSampler)):
        return "it hands out each point once and stops the study when every point is done"
    # Not loaded: not an ablation sampler (LOCOSampler is one).
    ablation = sys.modules.get("optuna_spark.ablation._sampler")
    if ablation is not None and isinstance(sampler, ablation.AblationSampler):
        return "it hands out each (arm, repeat) once and ends the study when all are done"
    return None
