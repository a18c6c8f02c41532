"""Values and pairwise interactions of a sampled Shapley design: a second-order fit.

On a budget (``order=2``), the values and the pairs' indices come from the second-order
game closest to the one observed,

    v(S) = v(none) + sum_i m_i [i in S] + sum_{i < j} m_ij [i in S and j in S],

fitted by least squares to every subset run, each weighted by the Shapley kernel
``1 / (C(n, |S|) |S| (n - |S|))`` and constrained to the observed ``v(all)``. A game without
interactions of order three or more is its own second-order fit, and ``m_ij`` is then its
Shapley interaction index exactly (noise aside). Otherwise it approximates it: fitted to
every subset, ``m_ij`` would be the faithful Shapley interaction index of order 2 (Tsai, Yeh
and Ravikumar, 2023); on a budget, the approximation depends on which subsets ran. The fit's
residuals, which grow with what a second-order game cannot express, widen its interval (a
heteroskedasticity-consistent variance, HC3) instead of flagging what the subsets cannot
resolve. They also carry the seeds' noise, which the repeats' spread counts already: the
intervals are conservative.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Game = dict[frozenset[str], np.ndarray]  # v(present components) by repeat


@dataclass(frozen=True)
class SecondOrderFit:
    """The fitted second-order game.

    Attributes:
        names: The components.
        pairs: The pairs of components, in the order of ``itertools.combinations``.
        per_repeat: ``(m_1, ..., m_n, m_12, ...)`` fitted to each repeat's game:
            (repeats, n + pairs).
        residual_df: The fit's residual degrees of freedom.
        n_subsets: How many subsets the fit used.
    """

    names: list[str]
    pairs: list[tuple[str, str]]
    per_repeat: np.ndarray
    residual_df: int
    n_subsets: int
    #: The coefficients as a linear map of the rows' values: (n + pairs, rows).
    _to_rows: np.ndarray
    #: Each row's residual in the fit to the mean game, over one minus its leverage (HC3).
    _scaled: np.ndarray

    def misfit(self, combination: np.ndarray) -> np.ndarray:
        """The variance that the fit's residuals give each linear combination of the
        coefficients (one per row of ``combination``)."""
        return np.asarray(((combination @ self._to_rows) ** 2) @ self._scaled**2)

    def interactions(self) -> tuple[np.ndarray, np.ndarray]:
        """Each pair's index per repeat (repeats, pairs), and its misfit variance."""
        n = len(self.names)
        pick = np.eye(n + len(self.pairs))[n:]
        return self.per_repeat @ pick.T, self.misfit(pick)

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted game's Shapley values per repeat (repeats, n), ``m_i`` plus half of
        each of its pairs' ``m_ij``, and their misfit variance."""
        n = len(self.names)
        share = np.hstack([np.eye(n), np.zeros((n, len(self.pairs)))])
        for k, (i, j) in enumerate(self.pairs):
            share[self.names.index(i), n + k] = share[self.names.index(j), n + k] = 0.5
        return self.per_repeat @ share.T, self.misfit(share)


def fit_game(game: Game, names: Sequence[str]) -> SecondOrderFit:
    """The second-order fit of ``game`` over every subset it has.

    Raises:
        ValueError: The subsets do not identify every pair (the design's fit subsets have
            not all run).
    """
    n = len(names)
    everything, nothing = frozenset(names), frozenset[str]()
    pairs = list(itertools.combinations(names, 2))
    rows = [s for s in game if 0 < len(s) < n]
    p = n + len(pairs)
    x = np.array(
        [[c in s for c in names] + [i in s and j in s for i, j in pairs] for s in rows],
        dtype=float,
    ).reshape(len(rows), p)
    weight = np.array([1.0 / (math.comb(n, len(s)) * len(s) * (n - len(s))) for s in rows])
    # The constrained least squares, as one linear map of the observed values: minimise the
    # weighted squared error subject to sum(m) = v(all) - v(none).
    kkt = np.zeros((p + 1, p + 1))
    kkt[:p, :p] = x.T @ (x * weight[:, None])
    kkt[:p, p] = kkt[p, :p] = 1.0
    if nothing not in game or everything not in game or np.linalg.matrix_rank(kkt) < p + 1:
        raise ValueError(
            "The subsets run do not identify every pair's interaction: the pairwise fit "
            "needs all of ShapleyAblation's fit subsets done for some seed."
        )
    inverse = np.linalg.inv(kkt)
    to_rows = inverse[:p, :p] @ (x.T * weight)  # (p, rows)
    to_total = inverse[:p, p]

    base = game[nothing]
    y = np.array([game[s] - base for s in rows])  # (rows, repeats)
    per_repeat = (to_rows @ y + np.outer(to_total, game[everything] - base)).T  # (repeats, p)
    # The fit is linear: the mean game's fit is the mean of the repeats' fits.
    residual = y.mean(axis=1) - x @ per_repeat.mean(axis=0)
    leverage = np.einsum("rp,pr->r", x, to_rows)
    # A row that alone determines a parameter has no residual to show (leverage 1).
    free = leverage < 1.0 - 1e-9
    scaled = np.where(free, residual / np.where(free, 1.0 - leverage, 1.0), 0.0)
    return SecondOrderFit(
        names=list(names),
        pairs=pairs,
        per_repeat=per_repeat,
        residual_df=len(rows) - p + 1,
        n_subsets=len(rows) + 2,
        _to_rows=to_rows,
        _scaled=scaled,
    )
