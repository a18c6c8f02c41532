"""Per-trial resources: each task of the job under a Spark ``ResourceProfile``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from optuna_spark._spark import _session
from optuna_spark.exceptions import SparkSetupError

if TYPE_CHECKING:
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
