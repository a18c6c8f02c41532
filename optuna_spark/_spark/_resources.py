"""Per-trial resources: each task of the job under a Spark ``ResourceProfile``; with
:class:`TrialResources`, a few profiles, one stage each, chosen by each trial's parameters."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from optuna_spark._spark import _session
from optuna_spark.exceptions import SparkSetupError

if TYPE_CHECKING:
    import optuna
    from pyspark.resource import ResourceProfile
    from pyspark.sql import SparkSession

#: Names users write -> Spark's resource names ("cpus" is Spark's own task CPU count).
_ALIASES = {"gpus": "gpu", "gpu": "gpu"}


def check_resources(resources: Mapping[str, Any] | None) -> dict[str, float] | None:
    """``resources`` validated: ``{"cpus": 4, "gpus": 1, ...}`` with positive amounts."""
    if resources is None:
        return None
    if not isinstance(resources, Mapping) or not resources:
        raise ValueError(
            f"resources must be a non-empty dict such as {{'cpus': 4, 'gpus': 1}}, but got "
            f"{resources!r}."
        )
    out: dict[str, float] = {}
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"Resource names must be strings such as 'cpus', not {name!r}.")
        ok = isinstance(amount, (int, float)) and not isinstance(amount, bool)
        if not ok or not math.isfinite(amount) or amount <= 0:
            raise ValueError(f"resources[{name!r}] must be a positive number, not {amount!r}.")
        if name == "cpus" and int(amount) != amount:
            raise ValueError(f"resources['cpus'] must be a whole number, not {amount!r}.")
        if amount > 0.5 and int(amount) != amount:
            # Spark shares one address among 1/amount tasks: a fraction is at most a half.
            raise ValueError(
                f"resources[{name!r}] must be a whole number or a fraction of at most 0.5 "
                f"(0.5: two trials per GPU, 0.25: four), not {amount!r}."
            )
        out[name] = float(amount)
    return out


def check_by_trial(sampling: str, coordinator: str) -> None:
    """Refuse what cannot choose resources per trial."""
    if sampling != "driver":
        raise ValueError(
            "TrialResources needs sampling='driver': the driver samples the parameters that "
            "decide a trial's resources before it knows which worker runs the trial, and with "
            "sampling='workers' only the worker samples. Use sampling='driver', or fixed "
            "resources."
        )
    if coordinator == "cluster":
        raise ValueError(
            "TrialResources needs coordinator='driver' (one Spark stage per profile, started "
            "from the driver); the cluster coordinator runs one stage. Use "
            "coordinator='driver', or fixed resources."
        )


def task_profile(spark: SparkSession, resources: dict[str, float]) -> ResourceProfile:
    """The profile every task of the job runs under; refused where Spark cannot honour it."""
    master = _session.master(spark) or ""
    if _session.is_local_master(master):
        raise SparkSetupError(
            f"resources={resources} needs a cluster manager that schedules tasks by resource "
            f"profile (standalone, YARN or Kubernetes, with dynamic allocation off for "
            f"standalone), but this session runs in local mode ({master}), where every task "
            "shares the driver's slots. Drop resources=, or run on a cluster."
        )
    from pyspark.resource import ResourceProfileBuilder
    from pyspark.resource import TaskResourceRequests

    requests = TaskResourceRequests()
    for name, amount in resources.items():
        if name == "cpus":
            requests = requests.cpus(int(amount))
        else:
            requests = requests.resource(_ALIASES.get(name, name), amount)
    return ResourceProfileBuilder().require(requests).build


class TrialResources:
    """Resources chosen by each trial's parameters: a few named profiles (one Spark stage,
    with its own workers, each) and a function of the trial that picks one.

    Pass it as ``SparkExecutor(resources=...)``. When the driver makes a trial, ``choose``
    runs there with it, before any worker does: it suggests the parameters that decide the
    trial's resources and returns a profile's name; the trial then runs on a worker of that
    profile (it waits for a free one if need be, while workers of the other profiles go on
    with other trials). The objective suggests the same parameters again, with the same
    names and ranges, and gets the values already chosen.

    What this changes for the sampler: the parameters ``choose`` suggests are sampled when
    the trial is made, not when its objective starts, and a trial may wait for a worker of
    its profile after that, RUNNING (which TPE's constant liar counts as in flight). The
    trial's start time includes that wait. Every other parameter is sampled as usual.

    Needs ``sampling="driver"`` and ``coordinator="driver"``, on a cluster manager with
    stage-level scheduling (standalone, YARN or Kubernetes), as fixed ``resources`` do.

    Args:
        profiles: Each profile's name and what a trial under it needs, as a fixed
            ``resources=`` mapping (``{"gpus": 1}``, ``{"cpus": 8, "gpus": 2}``). At most
            eight: each is a stage whose workers wait for its trials.
        choose: ``choose(trial) -> name``, called on the driver with each new
            ``optuna.Trial``.
        n_workers: Workers (Spark tasks) of each profile, one int for all or a mapping by
            name. ``None``: ``SparkExecutor``'s ``n_workers`` for each.

    Example:

        .. code-block:: python

            from optuna_spark import SparkExecutor
            from optuna_spark import TrialResources

            resources = TrialResources(
                {"small": {"gpus": 1}, "large": {"gpus": 2}},
                lambda trial: "large" if trial.suggest_int("layers", 1, 16) > 8 else "small",
                n_workers={"small": 4, "large": 2},
            )
            executor = SparkExecutor(resources=resources)
    """

    #: The most profiles one executor takes.
    MAX_PROFILES = 8

    def __init__(
        self,
        profiles: Mapping[str, Mapping[str, float]],
        choose: Callable[[optuna.Trial], str],
        *,
        n_workers: Mapping[str, int] | int | None = None,
    ) -> None:
        if not isinstance(profiles, Mapping) or not profiles:
            raise ValueError(
                "profiles must be a non-empty dict of named resources, such as "
                f"{{'small': {{'gpus': 1}}, 'large': {{'gpus': 2}}}}, but got {profiles!r}."
            )
        if len(profiles) > self.MAX_PROFILES:
            raise ValueError(
                f"At most {self.MAX_PROFILES} resource profiles (one Spark stage each), but "
                f"got {len(profiles)}: group trials into fewer profiles."
            )
        checked: dict[str, dict[str, float]] = {}
        for name, resources in profiles.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Profile names must be non-empty strings, not {name!r}.")
            try:
                checked[name] = check_resources(resources) or {}
            except ValueError as e:
                raise ValueError(f"Profile {name!r}: {e}") from None
            if not checked[name]:
                raise ValueError(f"Profile {name!r} must name its resources, not None.")
        if not callable(choose):
            raise TypeError(
                "choose must be a function of the trial that returns a profile's name, but "
                f"got {choose!r}."
            )
        if isinstance(n_workers, Mapping):
            unknown = sorted(set(n_workers) - set(checked))
            if unknown:
                raise ValueError(
                    f"n_workers names profiles that do not exist: {unknown} (profiles: "
                    f"{sorted(checked)})."
                )
            counts = dict(n_workers)
        else:
            counts = {} if n_workers is None else dict.fromkeys(checked, n_workers)
        for name, n in counts.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(
                    f"n_workers of profile {name!r} must be a positive int, but got {n!r}."
                )
        self.profiles = checked
        self.choose = choose
        self.n_workers = counts

    def workers(self, default: int) -> dict[str, int]:
        """Each profile's workers (``default`` for one that ``n_workers`` does not name)."""
        return {name: self.n_workers.get(name, default) for name in self.profiles}

    def __repr__(self) -> str:
        return f"TrialResources({self.profiles!r}, {self.choose!r}, n_workers={self.n_workers!r})"
