"""A game with a known answer: main effects, a redundant pair, a synergistic pair, a null."""

from __future__ import annotations

import itertools
import math
import random
import zlib
from collections.abc import Iterable

import optuna

from optuna_spark.ablation import get_arm

COMPONENTS = ["a", "b", "c", "d", "e", "f", "g", "h"]
MAIN = {"a": 1.0, "b": 0.5, "e": 0.25, "f": 0.25, "g": 0.0, "h": 0.8}


def value(present: Iterable[str]) -> float:
    """v(S): main effects; c or d (redundant: either gives 1); e and f together add 1."""
    s = set(present)
    v = sum(MAIN.get(c, 0.0) for c in s)
    v += 1.0 if ("c" in s or "d" in s) else 0.0
    v += 1.0 if {"e", "f"} <= s else 0.0
    return v


def exact_shapley(names: list[str]) -> dict[str, float]:
    """By definition: the mean marginal contribution over every order (n! of them)."""
    totals = dict.fromkeys(names, 0.0)
    orders = list(itertools.permutations(names))
    for order in orders:
        for k, c in enumerate(order):
            totals[c] += value(order[: k + 1]) - value(order[:k])
    return {c: t / len(orders) for c, t in totals.items()}


def objective(noise: float = 0.0, components: list[str] = COMPONENTS):  # type: ignore[no-untyped-def]
    def run(trial: optuna.trial.BaseTrial) -> float:
        arm = get_arm(trial)
        present = [c for c in components if arm.is_enabled(c)]
        key = zlib.crc32(",".join(sorted(present)).encode())  # the same in every process
        rng = random.Random(arm.seed * 7919 + key)
        # Paired seeds: the same seed shifts every subset alike (a shared part), plus some
        # noise of its own.
        shared = random.Random(arm.seed).gauss(0, noise)
        return value(present) + shared + rng.gauss(0, noise / 2) if noise else value(present)

    return run


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=1e-9)
