"""The population, read from the study's trials: each member a chain of segment trials.

Everything the sampler decides is recorded on the trials (user attributes, so that
optuna-dashboard shows the lineage too), and everything it needs is read back from them: a
study resumed by a new driver, or read by anyone, has the same population.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

#: User attributes of a segment trial.
MEMBER = "pbt:member"  # which member of the population it trains
GENERATION = "pbt:generation"  # how many segments its model trained before it (its depth)
PARENT = "pbt:parent"  # the trial (number) whose checkpoint it starts from, or None
EXPLOITED = "pbt:exploited"  # the member it copied (exploit), or None (continued its own)
CHANGES = "pbt:changes"  # on an exploit: {param: [the member's value, the new value]}

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def score_of(trial: FrozenTrial) -> float | None:
    """A finished segment's score: its value, else its last reported value (a pruned one);
    ``None`` for a failed segment or one that reported nothing."""
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        value = trial.values[0]
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    return None if math.isnan(value) else float(value)


#: A member whose segments failed this many times in a row trains no more.
MAX_FAILURES = 3


@dataclasses.dataclass
class Member:
    """One member: its segments so far, oldest first."""

    index: int
    segments: list[FrozenTrial]

    @property
    def last(self) -> FrozenTrial | None:
        return self.segments[-1] if self.segments else None

    @property
    def running(self) -> bool:
        last = self.last
        return last is not None and last.state not in _FINISHED

    @property
    def scored(self) -> FrozenTrial | None:
        """Its latest finished segment with a score (what it is ranked and copied by)."""
        return next((t for t in reversed(self.segments) if score_of(t) is not None), None)

    def done(self, n_generations: int) -> bool:
        """Its model has trained ``n_generations`` segments (its last segment, scored, is of
        the last generation), or its last ``MAX_FAILURES`` segments failed."""
        last = self.last
        if last is None or self.running:
            return False
        if score_of(last) is not None:
            return int(last.user_attrs[GENERATION]) >= n_generations - 1
        tail = self.segments[-MAX_FAILURES:]
        return len(tail) == MAX_FAILURES and all(score_of(t) is None for t in tail)


@dataclasses.dataclass(frozen=True)
class Population:
    """Every member, by index, from one read of the study's trials."""

    members: list[Member]
    n_generations: int

    @classmethod
    def of(
        cls, trials: Sequence[FrozenTrial], population_size: int, n_generations: int
    ) -> Population:
        members = [Member(i, []) for i in range(population_size)]
        for trial in sorted(trials, key=lambda t: t.number):
            index = trial.user_attrs.get(MEMBER)
            if isinstance(index, int) and 0 <= index < population_size:
                members[index].segments.append(trial)
        return cls(members, n_generations)

    @property
    def over(self) -> bool:
        """Every member is done, and no segment runs."""
        return all(m.done(self.n_generations) for m in self.members)

    def next_member(self) -> Member | None:
        """The member the next segment trains: one not started yet, else the one idle
        longest (its last segment finished first) that is not done; ``None`` when every
        member not done is running a segment."""
        fresh = next((m for m in self.members if not m.segments), None)
        if fresh is not None:
            return fresh
        idle = [m for m in self.members if not m.running and not m.done(self.n_generations)]
        if not idle:
            return None
        return min(idle, key=lambda m: (_finished_at(m.last), m.index))

    def ranked(self, direction: StudyDirection) -> list[Member]:
        """The members with a score, best first, each by its latest scored segment."""
        scored = [m for m in self.members if m.scored is not None]
        reverse = direction == StudyDirection.MAXIMIZE
        return sorted(scored, key=lambda m: _score(m), reverse=reverse)


def _score(member: Member) -> float:
    scored = member.scored
    assert scored is not None
    value = score_of(scored)
    assert value is not None
    return value


def _finished_at(trial: FrozenTrial | None) -> Any:
    if trial is None or trial.datetime_complete is None:
        return (1, 0.0)
    return (0, trial.datetime_complete.timestamp())


def quantiles(ranked: list[Member], quantile: float) -> tuple[list[Member], list[Member]]:
    """The top and bottom ``quantile`` of ``ranked`` (best first): ``ceil(n * quantile)``
    members each, at most half of them, so that no member is in both."""
    n = min(math.ceil(len(ranked) * quantile), len(ranked) // 2)
    if n == 0:
        return [], []
    return ranked[:n], ranked[-n:]
