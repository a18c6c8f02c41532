"""``LOCOSampler``: a leave-one-component-out ablation, as the search space of an Optuna study."""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

from optuna_spark.ablation._policy import AblationPolicy
from optuna_spark.ablation._policy import LeaveOneIn
from optuna_spark.ablation._policy import LeaveOneOut
from optuna_spark.ablation._sampler import AblationSampler


class LOCOSampler(AblationSampler):
    """Leave-one-component-out ablation: each trial runs one arm, each arm ``n_repeats`` times.

    The arms are the base configuration (nothing left out) and one arm per feature, Keras
    layer (or PyTorch module), group of layers and named component; with ``pairs``, also arms
    that leave two components out together (redundant components show there, not alone); with
    ``leave_one_in=True``, instead, every component left out (``"none"``) and one arm per
    component kept alone. It is :class:`AblationSampler` with the :class:`LeaveOneOut` (or
    :class:`LeaveOneIn`) policy. Each (arm, repeat) is handed out exactly once,
    repeat by repeat, and the study stops by itself when all have run. Repeat ``r`` of every
    arm gets the same seed (arms are *paired*), so that :func:`ablation_report` can compare
    each arm with the base seed by seed.

    The sampler keeps its state in the study's storage, like
    :class:`~optuna.samplers.GridSampler`: ``before_trial`` records the assignment in the
    trial's system attributes, and in its user attributes (``loco_arm``, ``loco_kind``,
    ``loco_name``, ``loco_repeat``, ``loco_seed``, ...) where optuna-dashboard and
    ``trials_dataframe()`` show it. An (arm, repeat) is taken as soon as a trial holding it runs,
    whatever that trial's outcome (a failed arm is not re-run; the report counts the trials
    that completed).

    Exactness: assignment is serialized by a lock, so one process hands out each (arm, repeat)
    once, with ``study.optimize(..., n_jobs=k)`` as well as on Spark through
    :class:`optuna_spark.SparkExecutor` (whose driver asks for every trial, and consults
    :meth:`availability` first). In plain ``study.optimize`` the sampler calls ``study.stop()``
    as soon as the last (arm, repeat) is handed out; the running trials still finish. A thread
    that was already asking for a trial at that moment gets a *surplus* trial, which runs
    nothing: :func:`get_arm` raises ``optuna.TrialPruned`` (user attribute ``loco_surplus``), so
    it ends at once as PRUNED without a ``loco_arm``. The same happens when a finished
    ablation study is optimized again. Several processes that share a storage, each with its
    own sampler, may occasionally run an (arm, repeat) twice, as with ``GridSampler``; so may
    a trial enqueued with its ``loco_arm`` and ``loco_repeat`` (a retry), which is run as asked
    and marked ``loco_duplicate``.

    The objective reads its arm with :func:`get_arm` (which also suggests the ``loco_arm`` and
    ``loco_repeat`` parameters, so the arm is one of the trial's params) and builds its data
    and model with :func:`ablate_data` and :func:`ablate_model`. It should suggest nothing
    else: the point of an ablation is that everything but the left-out component stays fixed.

    Args:
        features: Input features to leave out, one arm each.
        layers: Names of Keras layers to leave out, one arm each.
        layer_groups: Groups of layers left out together, one arm each: a mapping from the
            group's name to a list of layer names (an entry ending in ``*`` matches every layer
            whose name starts with what precedes it), or to a single string, a name prefix.
        components: Any other named components the objective can switch off (a data
            augmentation, a loss term, a trick), one arm each; see :func:`is_enabled`.
        n_repeats: How many times each arm runs, with seeds shared across arms; or
            ``(low, high)``: adaptive repeats, ``low`` for every arm, then more (up to ``high``)
            only for arms whose difference from the base is not yet decided (see
            :class:`AblationSampler`).
        include_base: Whether to run the base arm (nothing left out). Without it the report
            cannot compare the arms with the base.
        seed: Seed from which the repeats' seeds derive. ``None`` draws one at random (give a
            seed to reproduce a study).
        pairs: ``True`` adds an arm for every pair of components (``"pair:a+b"``), a list of
            name pairs adds those; :func:`ablation_report` then shows each pair's interaction.
        leave_one_in: Run leave-one-in instead: ``"none"`` (every component left out), one arm
            per component kept alone (``"in:area"``), and the base; the report compares each
            with ``"none"``.
        alpha: Family-wise error rate of the adaptive repeats' decisions.
        min_effect: With adaptive repeats, a difference below this is negligible (see
            :class:`AblationSampler`).
        futility: With adaptive repeats, stop arms that the maximum could not decide (see
            :class:`AblationSampler`).

    Example:

        .. testcode::

            import numpy as np
            import optuna
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import ablation_report
            from optuna_spark.ablation import get_arm

            EFFECTS = {"area": 3.0, "rooms": 1.0, "noise": 0.0}


            def objective(trial):
                arm = get_arm(trial)
                rng = np.random.default_rng(arm.seed)
                loss = 1.0 + EFFECTS.get(arm.feature or "", 0.0)
                return loss + rng.normal(0.0, 0.1)


            sampler = LOCOSampler(features=["area", "rooms", "noise"], n_repeats=3, seed=1)
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective)  # ends by itself after 4 arms x 3 repeats
            report = ablation_report(study)
            assert list(report["arm"])[:3] == ["base", "feature:area", "feature:rooms"]
    """

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
        n_repeats: int | tuple[int, int] = 1,
        include_base: bool = True,
        seed: int | None = None,
        pairs: bool | Sequence[tuple[str, str]] = False,
        leave_one_in: bool = False,
        alpha: float = 0.05,
        min_effect: float | None = None,
        futility: bool = True,
    ) -> None:
        if leave_one_in and pairs is not False:
            raise ValueError(
                "pairs are arms that leave two components out; with leave_one_in=True "
                "give pairs=False (run a second, leave-one-out study for pairs)."
            )
        make: Callable[..., AblationPolicy] = (
            LeaveOneIn if leave_one_in else functools.partial(LeaveOneOut, pairs=pairs)
        )
        policy = make(
            features=features,
            layers=layers,
            layer_groups=layer_groups,
            components=components,
            include_base=include_base,
        )
        super().__init__(
            policy,
            n_repeats=n_repeats,
            seed=seed,
            alpha=alpha,
            min_effect=min_effect,
            futility=futility,
        )
