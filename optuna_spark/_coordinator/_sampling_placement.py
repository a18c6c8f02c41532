"""The sampling placement: whether the run's sampler may be copied to the workers.

``sampling="driver"`` (the default) samples every parameter with the run's own sampler;
``sampling="workers"`` gives each worker a copy. A sampler that hands out each point of a
finite set once (``GridSampler``, ``BruteForceSampler``, any
:class:`~optuna_spark._handout.FiniteSampler` such as the ablation samplers) needs one
instance that sees every hand-out: copies on the workers would repeat points.
"""

from __future__ import annotations

from optuna.samplers import BaseSampler
from optuna.samplers import BruteForceSampler

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark.wire.spec import Sampling
from optuna_spark.wire.spec import check_sampling_place


def check_sampling(sampling: Sampling, sampler: BaseSampler) -> None:
    """Refuse a placement that does not exist, or a sampler that must stay on the driver."""
    check_sampling_place(sampling)
    if sampling == "driver":
        return
    if isinstance(sampler, BruteForceSampler) or optuna_adapter.finite_view(sampler) is not None:
        raise ValueError(
            f"{type(sampler).__name__} cannot sample on the workers: it hands out each point "
            "once and ends the study when every point is done, so copies on the workers would "
            "repeat points. Use sampling='driver' (the default) with it."
        )
