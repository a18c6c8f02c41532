"""What a remote trial may ask of the driver's real ``optuna.Trial``, as plain data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from optuna_spark import _codec as c

TrialMethod = Callable[[optuna.Trial, list[Any]], Any]


def _suggest_float(t: optuna.Trial, a: list[Any]) -> Any:
    name, low, high, step, log = a
    return t.suggest_float(name, low, high, step=step, log=log)


def _suggest_int(t: optuna.Trial, a: list[Any]) -> Any:
    name, low, high, step, log = a
    return t.suggest_int(name, low, high, step=step, log=log)


def _suggest_categorical(t: optuna.Trial, a: list[Any]) -> Any:
    name, choices = a
    return t.suggest_categorical(name, choices)


def _set_user_attr(t: optuna.Trial, a: list[Any]) -> Any:
    t.set_user_attr(a[0], a[1])


def _set_constraint(t: optuna.Trial, a: list[Any]) -> Any:
    t.set_constraint(a[0], a[1])


def _params(t: optuna.Trial, a: list[Any]) -> Any:
    return t.params


def _distributions(t: optuna.Trial, a: list[Any]) -> Any:
    return {k: c.dist_out(v) for k, v in t.distributions.items()}


def _user_attrs(t: optuna.Trial, a: list[Any]) -> Any:
    return t.user_attrs


def _datetime_start(t: optuna.Trial, a: list[Any]) -> Any:
    return c.dt_out(t.datetime_start)


def _constraints(t: optuna.Trial, a: list[Any]) -> Any:
    return t.constraints


TRIAL_METHODS: dict[str, TrialMethod] = {
    "suggest_float": _suggest_float,
    "suggest_int": _suggest_int,
    "suggest_categorical": _suggest_categorical,
    "set_user_attr": _set_user_attr,
    "set_constraint": _set_constraint,
    "params": _params,
    "distributions": _distributions,
    "user_attrs": _user_attrs,
    "datetime_start": _datetime_start,
    "constraints": _constraints,
}
