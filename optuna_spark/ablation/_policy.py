"""Ablation policies: which arms an ablation study runs, possibly chosen from its results.

A policy only says *what* to run. :class:`~optuna_spark.ablation.AblationSampler` runs it:
each arm ``n_repeats`` times with paired seeds, each (arm, repeat) handed out once on any
number of workers, ending by itself, resumable from the storage.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Literal

from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._arm_specs import Catalog
from optuna_spark.ablation._arm_specs import loco_arms

Mode = Literal["out", "in"]


@dataclasses.dataclass(frozen=True)
class AblationHistory:
    """What an ablation study has run so far, as a policy sees it.

    Attributes:
        minimize: Whether smaller objective values are better.
        values: For each arm's label, the values of its completed trials by repeat.
        n_finished: For each arm's label, how many of its trials have finished (completed,
            pruned or failed).
        n_running: For each arm's label, how many of its trials are running.
        n_repeats: How many repeats each arm gets.
        memory: What the policy decided before, kept in the study (JSON values by key): an
            adaptive policy writes a decision here once (the round's winner of the ablation
            path), so that results that come in later (a retried trial) cannot change it, and
            a resumed study makes the same decisions.
    """

    minimize: bool
    values: Mapping[str, Mapping[int, float]]
    n_finished: Mapping[str, int]
    n_running: Mapping[str, int]
    n_repeats: int
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)

    def is_settled(self, label: str) -> bool:
        """Whether every repeat of the arm has finished (so its results are final)."""
        return self.n_finished.get(label, 0) >= self.n_repeats

    def mean(self, label: str) -> float:
        """The mean of the arm's completed values (NaN if none completed)."""
        values = list(self.values.get(label, {}).values())
        return sum(values) / len(values) if values else math.nan

    def best(self, labels: Sequence[str]) -> str | None:
        """The label with the best mean (the first on ties); ``None`` if none has a value."""
        scored = [(self.mean(lb), i, lb) for i, lb in enumerate(labels)]
        scored = [s for s in scored if math.isfinite(s[0])]
        if not scored:
            return None
        sign = 1.0 if self.minimize else -1.0
        return min(scored, key=lambda s: (sign * s[0], s[1]))[2]


class AblationPolicy(abc.ABC):
    """Decides which arms an ablation study runs; subclass it to write your own.

    A policy owns the *components* that arms may leave out (given to ``__init__``, checked
    and typed, so that :func:`ablate_data` and :func:`ablate_model` know features from
    layers) and answers :meth:`arms`. Give it to :class:`AblationSampler`, which runs each
    arm with paired, repeated seeds.

    A static policy (``adaptive = False``, the default) is asked once, with an empty history:
    its arms are known in advance. An adaptive policy (``adaptive = True``) is asked first with
    an empty history, then again whenever a trial is to be handed out, with what the study has
    run so far; it may return more arms as results come in (it must keep returning the arms it
    returned before, and record its decisions in ``history.memory``). While it
    returns nothing new and trials still run, workers wait for them; when nothing runs and it
    returns nothing new, the study ends.

    Attributes:
        adaptive: Whether :meth:`arms` reads the history.
        reference: The label of the arm that reports compare the others with (``"base"``).
        mode: ``"out"`` when arms leave components out of the reference (importance: how much
            worse an arm is), ``"in"`` when they add components to it (importance: how much
            better).
        direction: The study direction the policy's choices assume (``None``: either); the
            sampler refuses a study of the other direction.
        catalog: The components, by name, with their kinds.

    Example:

        A policy that removes blocks cumulatively, in a given order:

        .. testcode::

            import optuna
            from optuna_spark.ablation import AblationPolicy
            from optuna_spark.ablation import AblationSampler
            from optuna_spark.ablation import ArmSpec
            from optuna_spark.ablation import get_arm


            class Cumulative(AblationPolicy):
                def __init__(self, blocks):
                    super().__init__(components=blocks)
                    self.blocks = list(blocks)

                def arms(self, history):
                    out = [ArmSpec("base")]
                    for i in range(1, len(self.blocks) + 1):
                        out.append(ArmSpec(f"without {i}", left_out=self.blocks[:i]))
                    return out


            def objective(trial):
                arm = get_arm(trial)
                return sum(1.0 for b in ["a", "b", "c"] if not arm.is_enabled(b))


            sampler = AblationSampler(Cumulative(["a", "b", "c"]), n_repeats=2, seed=0)
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective)
            assert len(study.trials) == 8
    """

    adaptive: bool = False
    reference: str | None = a.BASE
    mode: Mode = "out"
    direction: Literal["minimize", "maximize"] | None = None

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
    ) -> None:
        self.catalog = Catalog.build(
            features=features, layers=layers, layer_groups=layer_groups, components=components
        )

    def trial_attrs(self) -> dict[str, Any]:
        """User attributes to record on every trial besides the arm's (JSON values): what
        a report needs to know of the policy's design. None by default."""
        return {}

    @abc.abstractmethod
    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        """The arms to run, in hand-out order, given what the study has run so far.

        Args:
            history: The study's results so far (empty for a static policy).

        Returns:
            Every arm to run, the ones returned before included, with unique labels.
        """


class LeaveOneOut(AblationPolicy):
    """The base, then one arm per component left out; optionally pairs left out together.

    Args:
        features: Input features to leave out, one arm each.
        layers: Names of Keras layers (or PyTorch modules) to leave out, one arm each.
        layer_groups: Groups of layers left out together, one arm each (see
            :class:`LOCOSampler`).
        components: Other named components the objective can switch off, one arm each.
        pairs: ``True`` adds an arm for every pair of components, a list of name pairs adds
            those: each leaves both out, to reveal redundant components (either alone is not
            missed, both are).
        include_base: Whether to run the base arm.
    """

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
        pairs: bool | Sequence[tuple[str, str]] = False,
        include_base: bool = True,
    ) -> None:
        super().__init__(
            features=features, layers=layers, layer_groups=layer_groups, components=components
        )
        if not self.catalog.names:
            raise ValueError(
                "Leave-one-out needs at least one feature, layer, layer group or component to "
                "leave out."
            )
        self._arms = loco_arms(self.catalog, include_base=include_base)
        self._arms += [
            ArmSpec(f"{a.KIND_PAIR}:{x}+{y}", (x, y), a.KIND_PAIR)
            for x, y in _pairs(pairs, self.catalog.names)
        ]

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        return self._arms


class LeaveOneIn(AblationPolicy):
    """Every component left out (``"none"``), then one arm per component kept alone.

    Reports compare each arm with ``"none"``: a component's importance is how much it helps on
    its own. The base (everything kept) runs too, unless ``include_base=False``.

    Args:
        features: Input features, one arm each.
        layers: Keras layers (or PyTorch modules), one arm each.
        layer_groups: Groups of layers, one arm each.
        components: Other named components, one arm each.
        include_base: Whether to run the base (every component kept) as well.

    Example:

        .. testcode::

            from optuna_spark.ablation import AblationSampler
            from optuna_spark.ablation import LeaveOneIn

            sampler = AblationSampler(LeaveOneIn(features=["area", "rooms"]), n_repeats=2)
            assert sampler.arms == ("none", "in:area", "in:rooms", "base")
    """

    reference = a.NONE
    mode: Mode = "in"

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
        include_base: bool = True,
    ) -> None:
        super().__init__(
            features=features, layers=layers, layer_groups=layer_groups, components=components
        )
        names = self.catalog.names
        if not names:
            raise ValueError("Leave-one-in needs at least one component.")
        self._arms = [ArmSpec(a.NONE, names, a.KIND_NONE)]
        self._arms += [
            ArmSpec(f"{a.KIND_IN}:{n}", tuple(m for m in names if m != n), a.KIND_IN)
            for n in names
        ]
        if include_base:
            self._arms.append(ArmSpec(a.BASE, (), a.KIND_BASE))

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        return self._arms


def _pairs(pairs: bool | Sequence[tuple[str, str]], names: Sequence[str]) -> list[tuple[str, str]]:
    if pairs is True:
        return list(itertools.combinations(names, 2))
    if pairs is False:
        return []
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be True, False or a list of name pairs, but got {pairs!r}.")
    order = {n: i for i, n in enumerate(names)}
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"Each entry of pairs must be two names, but got {pair!r}.")
        x, y = pair
        for n in (x, y):
            if n not in order:
                raise ValueError(
                    f"pairs names {n!r}, which is not a component of this ablation; its "
                    f"components are {list(names)}."
                )
        if x == y:
            raise ValueError(f"A pair must name two different components, but got {pair!r}.")
        ordered = (x, y) if order[x] < order[y] else (y, x)
        if ordered in out:
            raise ValueError(f"pairs lists {ordered} twice.")
        out.append(ordered)
    return out
