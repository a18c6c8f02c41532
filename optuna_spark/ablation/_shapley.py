"""``ShapleyAblation``: the fair division of what the components bring, with interactions.

The game: ``v(S)`` is the objective with only the components of ``S`` present (the others
left out), signed so that larger is better. A component's Shapley value is its marginal
contribution ``v(S + i) - v(S)`` averaged over the orders in which components could be
added; the values add up to ``v(all) - v(none)`` (efficiency). Each subset is one arm of the
ablation study (leaving out the components not in it), run with paired, repeated seeds.

- **Exact**: every one of the ``2 ** n`` subsets; the values and the pairwise Shapley
  interaction indices are the exact weighted sums.
- **Sampled** (``max_arms`` below ``2 ** n``): antithetic permutations. Each permutation
  and its reverse is one unit; a unit's subsets are the chains of prefixes of both, and its
  marginal contributions are an unbiased estimate of every value (each permutation's add up
  to ``v(all) - v(none)``, so efficiency holds exactly; a unit is exact for a game without
  interactions of order three or more). Units are added while the union of their subsets
  fits in ``max_arms``.
- **Sampled, with interactions** (``order=2``): the units come after the subsets a
  second-order fit needs (:func:`fit_subsets`: none and all, each component alone and each
  left out, and one subset per pair), and both the values and the pairs' indices come from
  a second-order game fitted to every subset run (``_shapley_fit``): exact for a game
  without interactions of order three or more, otherwise an approximation whose intervals
  carry the fit's residuals.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark.ablation import _arms as a
from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._arm_specs import Catalog
from optuna_spark.ablation._path import config_of
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._policy import AblationPolicy

#: The user attribute that records the design on each trial (for ``shapley_report``).
ATTR_DESIGN = "shapley_design"
#: The most components the exact design takes without ``max_arms`` (1,024 subsets: every
#: trial records every arm's label, as ablation trials do).
EXACT_LIMIT = 10
KIND_SUBSET = "subset"


class ShapleyAblation(AblationPolicy):
    """Shapley values of components (and their pairwise interactions), from real trials.

    Arms are subsets of the components: each leaves out the components not in its subset,
    the base leaves nothing out. Give it to :class:`AblationSampler` with ``n_repeats``
    (paired seeds: the same seeds for every subset); :func:`shapley_report` computes each
    component's Shapley value, with a confidence interval, and the interactions.

    Args:
        features: Input features, as in :class:`LOCOSampler`.
        layers: Keras layers or PyTorch modules.
        layer_groups: Groups of layers left out together.
        components: Other named components the objective can switch off.
        max_arms: The most subsets to run. ``None``: all ``2 ** n`` (exact; at most 10
            components). Fewer: antithetic permutations, as many pairs as fit (at least
            one pair: ``2 * n`` arms, and the pairs' fit with ``order=2``). ``(low,
            high)``: adaptive, as ``n_repeats=(low, high)``: the pairs that fit in ``low``
            first, then one more pair at a time, once every arm so far has all its repeats,
            while some value's 95% interval is wider than ``tolerance`` on either side and
            ``high`` allows.
        order: ``2`` also reports pairwise interactions (negative: redundant, positive:
            synergy). On a budget, values and interactions then come from a second-order
            fit to every subset run, whose subsets take up to ``2 * n + 2 + n * (n - 1) /
            2`` of ``max_arms`` (46 of 8 components' 256) before the permutations. ``1``:
            values only, from the permutations (unbiased whatever the game).
        tolerance: With an adaptive budget: the widest half-interval accepted, in objective
            units (default: 5% of all components against none).
        seed: Seeds the permutations of the sampled design.

    Example:

        .. testcode::

            import optuna
            from optuna_spark.ablation import AblationSampler, ShapleyAblation
            from optuna_spark.ablation import get_arm, shapley_report

            def objective(trial):
                arm = get_arm(trial)
                on = {c: arm.is_enabled(c) for c in ("a", "b", "c")}
                # a and b are redundant (either will do); c adds 1.
                return (2.0 if on["a"] or on["b"] else 0.0) + (1.0 if on["c"] else 0.0)

            policy = ShapleyAblation(components=["a", "b", "c"])
            sampler = AblationSampler(policy, n_repeats=1, seed=0)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective)  # 8 subsets
            report = shapley_report(study)
            assert report.loc["a", "shapley"] == report.loc["b", "shapley"] == 1.0
            assert report.loc["c", "shapley"] == 1.0
            assert report.attrs["interactions"].loc[("a", "b"), "interaction"] == -2.0
    """

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        layers: Sequence[str] = (),
        layer_groups: Mapping[str, str | Sequence[str]] | None = None,
        components: Sequence[str] = (),
        max_arms: int | tuple[int, int] | None = None,
        order: int = 2,
        tolerance: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            features=features, layers=layers, layer_groups=layer_groups, components=components
        )
        self._configs: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._setup(list(self.catalog.names), max_arms, order, seed, tolerance)

    @classmethod
    def from_study(
        cls,
        study: optuna.Study,
        *,
        source: Mapping[str, Any] | FrozenTrial | None = None,
        target: Mapping[str, Any] | FrozenTrial | None = None,
        max_arms: int | tuple[int, int] | None = None,
        order: int = 2,
        tolerance: float | None = None,
        seed: int = 0,
    ) -> ShapleyAblation:
        """The Shapley values of a tuned study's changes: from its first completed trial (or
        ``source``, your defaults) to its best (or ``target``), each parameter the two set
        differently is a component, present when set to the target's value.

        Run it with :class:`AblationSampler` and the *tuning* objective, as
        :class:`AblationPath`: the sampler answers each ``suggest_*`` with the arm's
        configuration. Unlike the path's, the credit is order free, and with ``order=2``
        (the default) the pairwise interactions of the changes come with it.

        Raises:
            ValueError: The study has no completed trial, or the two configurations differ
                in fewer than two parameters.
        """
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise ValueError(f"Study {study.study_name!r} has no completed trial to start from.")
        start = config_of("source", complete[0] if source is None else source)
        end = config_of("target", study.best_trial if target is None else target)
        names = [p for p in end if p in start and start[p] != end[p]]
        policy = cls.__new__(cls)
        AblationPolicy.__init__(policy)
        policy.catalog = Catalog.build(params=names)
        policy._configs = (start, end)
        policy.direction = "minimize" if study.direction == StudyDirection.MINIMIZE else "maximize"
        policy._setup(names, max_arms, order, seed, tolerance)
        return policy

    def _setup(
        self,
        names: list[str],
        max_arms: int | tuple[int, int] | None,
        order: int,
        seed: int,
        tolerance: float | None,
    ) -> None:
        """Check the design, and make its arms."""
        n = len(names)
        if n < 2:
            raise ValueError("A Shapley ablation needs at least two components.")
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (values) or 2 (and interactions), not {order!r}.")
        fixed = fit_subsets(names, seed) if order == 2 else []
        low, high = _budget(max_arms, n, len(fixed))
        exact = high is None or high >= 2**n
        if high is None and n > EXACT_LIMIT:
            raise ValueError(
                f"{n} components have {2**n} subsets: set max_arms to run a sample of them "
                f"(the exact design takes at most {EXACT_LIMIT} components)."
            )
        if tolerance is not None and (not math.isfinite(tolerance) or tolerance <= 0):
            raise ValueError(f"tolerance must be a positive number, not {tolerance!r}.")
        self.names = names
        self.order = order
        self.exact = exact
        self.tolerance = tolerance
        #: The subsets run before the permutations (for the pairs' fit), when sampled.
        self.fixed = [] if exact else fixed
        self.permutations = [] if exact else _antithetic(names, high or 0, seed, self.fixed)
        #: With a (low, high) budget: the units (pairs of permutations) run at first.
        self.adaptive = low is not None and not exact
        self.first_units = (
            _units_within(self.permutations, low, self.fixed) if self.adaptive else 0
        )
        self._arms = self._arms_of(len(self.permutations) // 2)

    def _arms_of(self, units: int) -> list[ArmSpec]:
        return [_arm(self.names, present, self._configs) for present in self._subsets(2 * units)]

    def _subsets(self, n_permutations: int | None = None) -> list[frozenset[str]]:
        """The subsets of present components to run (with the first ``n_permutations``
        permutations, when sampled), the full set (the base) first."""
        if self.exact:
            n = len(self.names)
            masks = sorted(range(2**n), key=lambda m: (-bin(m).count("1"), m))
            return [frozenset(c for k, c in enumerate(self.names) if m >> k & 1) for m in masks]
        seen = dict.fromkeys([frozenset(self.names), *self.fixed])
        for permutation in self.permutations[:n_permutations]:
            for k in range(len(permutation) + 1):
                seen.setdefault(frozenset(permutation[:k]), None)
        return list(seen)

    def design(self) -> dict[str, Any]:
        """What :func:`shapley_report` needs besides the values: the components, whether the
        design is exact, the permutations (pairs of a permutation and its reverse), the
        order."""
        return {
            "components": self.names,
            "exact": self.exact,
            "permutations": [list(p) for p in self.permutations],
            "order": self.order,
        }

    def trial_attrs(self) -> dict[str, Any]:
        return {ATTR_DESIGN: self.design()}

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        if not self.adaptive:
            return self._arms
        units = int(history.memory.get(_UNITS, self.first_units))
        arms = self._arms_of(units)
        settled = all(history.is_settled(arm.label) for arm in arms)
        if settled and units < len(self.permutations) // 2 and self._too_wide(history, units):
            units += 1  # one more pair of permutations: its subsets join the study
            arms = self._arms_of(units)
        history.memory[_UNITS] = units
        return arms

    def _too_wide(self, history: AblationHistory, units: int) -> bool:
        """Whether some value's interval, from the first ``units`` units' results, is wider
        than ``tolerance`` on either side (default: 5% of all components against none)."""
        from optuna_spark.ablation._shapley_report import half_widths

        permutations = self.permutations[: 2 * units]
        widths, total = half_widths(history, self.names, permutations, self.fixed)
        tolerance = self.tolerance if self.tolerance is not None else 0.05 * abs(total)
        return not all(w <= tolerance for w in widths)


def _arm(
    names: Sequence[str],
    present: frozenset[str],
    configs: tuple[dict[str, Any], dict[str, Any]] | None,
) -> ArmSpec:
    """The arm of ``present``; with ``configs`` (source, target), a configuration: the
    target's values for the present changes (and for what only the target sets), the
    source's for the others."""
    left_out = tuple(n for n in names if n not in present)
    params = None
    if configs is not None:
        start, end = configs
        params = {**start, **{p: v for p, v in end.items() if p in present or p not in start}}
    if not left_out:
        return ArmSpec(a.BASE, (), a.KIND_BASE, params)
    return ArmSpec(subset_label(left_out), left_out, KIND_SUBSET, params)


#: What an adaptive design decided (``AblationHistory.memory``): the units it runs.
_UNITS = "shapley_units"


def _budget(
    max_arms: int | tuple[int, int] | None, n: int, n_fixed: int
) -> tuple[int | None, int | None]:
    """``(low, high)`` arms: ``(None, k)`` for a fixed budget, ``(None, None)`` for every
    subset; each at least the ``n_fixed`` subsets of the pairs' fit and one pair of
    permutations (or every subset)."""
    if max_arms is None:
        return None, None
    # A unit's chains have 2 * n subsets; up to 6 of them (none, all, and the sizes 1 and
    # n - 1) are among the fit's.
    least = min(2**n, n_fixed + max(0, 2 * n - 6) if n_fixed else 2 * n)
    pair = tuple(max_arms) if isinstance(max_arms, (tuple, list)) else (None, max_arms)
    ok = len(pair) == 2 and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= least) for v in pair
    )
    if not ok or pair[1] is None or (pair[0] is not None and pair[0] > pair[1]):
        need = f"the fit's {n_fixed} subsets and the new ones of " if n_fixed else ""
        hint = f"; or order=1 for values only (from {2 * n} arms)" if n_fixed else ""
        raise ValueError(
            f"max_arms must be an int of at least {least} ({need}one pair of permutations of "
            f"{n} components), a (low, high) pair of such ints for an adaptive budget, or "
            f"None for every subset{hint}, but got {max_arms!r}."
        )
    return pair[0], pair[1]


def fit_subsets(names: Sequence[str], seed: int) -> list[frozenset[str]]:
    """The subsets a second-order fit of the game needs, whatever the permutations: none and
    all, each component alone and each left out, and one subset per pair, so that every
    pair's index is identified. Half the pairs, drawn with ``seed``, are run alone, the
    other half as everything but the pair: which pairs lean which way where the game has
    interactions of higher order then depends on the seed, not on the components' order."""
    everything = frozenset(names)
    out = [frozenset(), everything]
    for c in names:
        out += [frozenset([c]), everything - {c}]
    pairs = list(itertools.combinations(names, 2))
    random.Random(seed).shuffle(pairs)
    for k, (i, j) in enumerate(pairs):
        out.append(frozenset([i, j]) if k % 2 == 0 else everything - {i, j})
    return list(dict.fromkeys(out))


def _units_within(
    permutations: Sequence[Sequence[str]], low: int | None, fixed: Sequence[frozenset[str]]
) -> int:
    """How many units (pairs of permutations), in order, fit in ``low`` subsets besides the
    ``fixed`` ones (at least one)."""
    seen: set[frozenset[str]] = set(fixed)
    units = 0
    for u in range(0, len(permutations), 2):
        chains = {frozenset(p[:k]) for p in permutations[u : u + 2] for k in range(len(p) + 1)}
        if units and low is not None and len(seen | chains) > low:
            break
        seen |= chains
        units += 1
    return units


def subset_label(left_out: Sequence[str]) -> str:
    """The label of the arm that leaves ``left_out`` out (``"without:a+b"``)."""
    return _PREFIX + "+".join(left_out)


def left_out_of(label: str) -> tuple[str, ...]:
    """What the arm labelled ``label`` leaves out: the inverse of :func:`subset_label`."""
    return () if label == a.BASE else tuple(label.removeprefix(_PREFIX).split("+"))


_PREFIX = "without:"


def _antithetic(
    names: Sequence[str], max_arms: int, seed: int, fixed: Sequence[frozenset[str]]
) -> list[list[str]]:
    """Permutations in antithetic pairs (one, then its reverse), while the union of their
    prefix chains and the ``fixed`` subsets fits in ``max_arms``; always at least one pair."""
    rng = random.Random(seed)
    subsets: set[frozenset[str]] = set(fixed)
    permutations: list[list[str]] = []
    tries = 0
    while tries < 100 * len(names):
        tries += 1
        order = list(names)
        rng.shuffle(order)
        pair = [order, order[::-1]]
        chains = {frozenset(p[:k]) for p in pair for k in range(len(p) + 1)}
        if permutations and len(subsets | chains) > max_arms:
            if len(subsets) >= max_arms - 1:
                break
            continue  # a pair that shares more subsets may still fit
        subsets |= chains
        permutations += pair
        if len(permutations) // 2 >= math.factorial(len(names)) // 2:
            break
    return permutations
