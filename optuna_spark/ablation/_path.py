"""The ablation path (Fawcett & Hoos, 2016): which of the tuned changes actually mattered.

From a *source* configuration (a default) to a *target* (the tuned best), the path flips one
parameter at a time: at each round every parameter not flipped yet is tried on top of the
current configuration, and the one whose flip gives the best mean is kept. Rounds run as an
ablation study: every candidate of a round (and its repeats) runs in parallel; the next round
starts when the round's results are in.
"""

from __future__ import annotations

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
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._policy import AblationPolicy

#: The label of the target configuration (every parameter flipped).
TARGET = "target"


class AblationPath(AblationPolicy):
    """The greedy ablation path from a source configuration to a target, one parameter a step.

    Run it with :class:`AblationSampler` in a new study, with the *tuning* objective: the
    sampler answers each ``suggest_*`` with the value of the trial's configuration, so the
    objective needs no change (call :func:`get_arm` in it only to seed with ``arm.seed``).
    Then :func:`ablation_path_report` gives the path, and :func:`plot_ablation_path` draws it.

    Arms: ``"base"`` (the source), ``"target"``, and ``"flip:lr+depth"`` for the source with
    those parameters set to the target's values. A round of ``k`` parameters left runs ``k``
    arms; the whole path ``n (n + 1) / 2 + 1`` for ``n`` parameters that differ. A parameter
    that only one configuration sets (a conditional one) is not a step of the path: every arm
    gets that configuration's value, for when the objective asks for it. Each round's choice is
    recorded in the study when the round's results are in, and never changes after.

    Args:
        source: The configuration the path starts from (a dict of parameters, or a trial).
        target: The configuration the path ends at.

    Example:

        .. testcode::

            import optuna
            from optuna_spark.ablation import AblationPath
            from optuna_spark.ablation import AblationSampler
            from optuna_spark.ablation import ablation_path_report


            def objective(trial):
                x = trial.suggest_float("x", -10, 10)
                y = trial.suggest_int("y", 0, 10)
                z = trial.suggest_categorical("z", ["a", "b"])
                return (x - 1) ** 2 + 0.1 * (y - 5) ** 2 + (z == "b")


            policy = AblationPath({"x": 8.0, "y": 0, "z": "b"}, {"x": 1.0, "y": 5, "z": "a"})
            study = optuna.create_study(sampler=AblationSampler(policy, seed=0))
            study.optimize(objective)
            path = ablation_path_report(study)
            assert list(path["param"]) == ["", "x", "y", "z"]  # the biggest gain first
            assert path["gain"].iloc[1] > path["gain"].iloc[2] > path["gain"].iloc[3] > 0
    """

    adaptive: bool = True

    def __init__(
        self,
        source: Mapping[str, Any] | FrozenTrial,
        target: Mapping[str, Any] | FrozenTrial,
    ) -> None:
        self.source = config_of("source", source)
        self.target = config_of("target", target)
        names = [p for p in self.target if p in self.source and self.source[p] != self.target[p]]
        if not names:
            raise ValueError(
                "The source and target configurations set no parameter to different values: "
                "there is no path to walk."
            )
        self.params = tuple(names)
        super().__init__()
        self.catalog = Catalog.build(params=self.params)

    @classmethod
    def from_study(
        cls,
        study: optuna.Study,
        *,
        source: Mapping[str, Any] | FrozenTrial | None = None,
        target: Mapping[str, Any] | FrozenTrial | None = None,
    ) -> AblationPath:
        """The path of a tuned study: from its first completed trial to its best.

        Args:
            study: A tuned single-objective study.
            source: The start instead of the first completed trial (your defaults, say).
            target: The end instead of the best trial.

        Raises:
            ValueError: The study has no completed trial.
        """
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise ValueError(f"Study {study.study_name!r} has no completed trial to start from.")
        path = cls(
            complete[0] if source is None else source,
            study.best_trial if target is None else target,
        )
        path.direction = "minimize" if study.direction == StudyDirection.MINIMIZE else "maximize"
        return path

    @classmethod
    def restore(
        cls, source: Mapping[str, Any], target: Mapping[str, Any], params: Sequence[str]
    ) -> AblationPath:
        """The policy a study ran with, from its recorded configurations and parameter order."""
        path = cls.__new__(cls)
        path.source, path.target, path.params = dict(source), dict(target), tuple(params)
        path.catalog = Catalog.build(params=path.params)
        return path

    def config(self, flipped: Sequence[str]) -> dict[str, Any]:
        """The source with the ``flipped`` parameters set to the target's values (and the
        parameters that only the target sets)."""
        out = dict(self.source)
        for p in self.target:
            if p in flipped or p not in out:
                out[p] = self.target[p]
        return out

    def label(self, flipped: Sequence[str]) -> str:
        """``"base"``, ``"target"`` or ``"flip:a+b"`` (in the order of :attr:`params`)."""
        if not flipped:
            return a.BASE
        if len(flipped) == len(self.params):
            return TARGET
        return "flip:" + "+".join(p for p in self.params if p in flipped)

    def arms(self, history: AblationHistory) -> Sequence[ArmSpec]:
        history.memory.setdefault(
            "path", {"source": self.source, "target": self.target, "params": list(self.params)}
        )
        out = [self._arm(()), self._arm(self.params)]
        for state in self.walk(history)[0]:
            out += [
                self._arm((*state, p))
                for p in self.params
                if p not in state and len(state) + 1 < len(self.params)
            ]
        return list({arm.label: arm for arm in out}.values())

    def walk(self, history: AblationHistory) -> tuple[list[tuple[str, ...]], bool]:
        """The rounds' starting points so far, and whether the path is complete.

        Round ``k`` starts from the ``k`` parameters flipped so far; it is decided (and the
        next round starts) when all of its candidates have settled. The choice is written to
        ``history.memory`` then, and read from there ever after.
        """
        state: tuple[str, ...] = ()
        rounds = [state]
        while len(state) + 1 < len(self.params):
            key = f"path:{len(state)}"
            chosen = history.memory.get(key)
            if chosen is None:
                candidates = [self.label((*state, p)) for p in self.params if p not in state]
                if not all(history.is_settled(lb) for lb in candidates):
                    return rounds, False
                best = history.best(candidates)
                if best is None:  # every candidate failed: the path cannot go on
                    return rounds, True
                chosen = next(p for p in self._flipped(best) if p not in state)
                history.memory[key] = chosen
            state = (*state, str(chosen))
            rounds.append(state)
        return rounds, True

    def _flipped(self, label: str) -> tuple[str, ...]:
        if label == TARGET:
            return self.params
        if label == a.BASE:
            return ()
        return tuple(label.removeprefix("flip:").split("+"))

    def _arm(self, flipped: Sequence[str]) -> ArmSpec:
        label = self.label(flipped)
        kind = a.KIND_BASE if label == a.BASE else a.KIND_PATH
        return ArmSpec(label, (), kind, self.config(flipped))


def config_of(arg: str, config: Mapping[str, Any] | FrozenTrial) -> dict[str, Any]:
    """``config`` (a dict of parameters, or a trial's) as a dict; ``arg`` names it in errors."""
    if isinstance(config, FrozenTrial):
        return dict(config.params)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{arg} must be a dict of parameters or a FrozenTrial, but got "
            f"{type(config).__name__}."
        )
    return dict(config)
