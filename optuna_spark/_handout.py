"""The sampler protocol of a central hand-out: what a sampler can give out right now.

A driver that asks its sampler on behalf of many workers must know, before each ask, whether
asking now makes sense. Most samplers always have a next point; some hand out each point of a
finite set once (``GridSampler``, ``BruteForceSampler``, the ablation samplers), and an
adaptive one may have nothing to give until a running trial's result is in. Such a sampler
implements :class:`FiniteSampler`: one method, :meth:`~FiniteSampler.availability`, answered
with one look at the study. Optuna's own finite samplers are wrapped to the same protocol by
``optuna_spark._optuna_adapter.finite_view``, which is the only place that knows their
internals.

- :attr:`Availability.READY`: a trial asked for now gets a point that has not started.
- :attr:`Availability.WAIT`: nothing can start until a running trial finishes (its result
  decides what comes next); the driver keeps the asking worker waiting.
- :attr:`Availability.EXHAUSTED`: every point has started; asking again could only repeat
  one, so the driver hands out no more trials (the running ones still finish).

A trial waiting in the study's queue (``enqueue_trial``, a retry of a lost trial) makes a
sampler ``READY``: ``study.ask()`` hands out the queued trial first.

A finite sampler must also stay on the driver (``sampling="driver"``): copies of it on the
workers would each hand out the same points.

Example:

    .. testcode::

        import optuna
        from optuna_spark._handout import Availability, FiniteSampler


        class TwoPoints(optuna.samplers.RandomSampler):
            '''Hands out x=0 and x=1, once each.'''

            def availability(self, study):
                started = [t for t in study.get_trials(deepcopy=False) if "x" in t.params]
                return Availability.READY if len(started) < 2 else Availability.EXHAUSTED

            def sample_independent(self, study, trial, name, distribution):
                return float(len(study.get_trials(deepcopy=False)) - 1)


        sampler = TwoPoints()
        assert isinstance(sampler, FiniteSampler)
        study = optuna.create_study(sampler=sampler)
        while sampler.availability(study) is Availability.READY:
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0, 1))
        assert sorted(t.params["x"] for t in study.trials) == [0.0, 1.0]
"""

from __future__ import annotations

import enum
from typing import Protocol
from typing import runtime_checkable

import optuna


class Availability(enum.Enum):
    """What a sampler can hand out right now (see the module's description)."""

    READY = "ready"
    WAIT = "wait"
    EXHAUSTED = "exhausted"


@runtime_checkable
class FiniteSampler(Protocol):
    """A sampler that hands out each point of a finite set once, and may have to wait."""

    def availability(self, study: optuna.Study) -> Availability:
        """What a trial asked for now would get: a new point, a wait, or nothing more."""
        ...
