"""An objective's return value, judged on the worker exactly as ``Study.optimize`` judges it.

Only floats travel. Optuna turns a return value into a list (a sequence as it is, anything
else as one value) and casts each to float; what cannot be cast fails the trial with
Optuna's message, and the study goes on. A value that casts but that Optuna's NaN check then
chokes on (the characters of a ``str`` of digits, say) makes ``Study.optimize`` itself raise;
here the trial fails and the study stops with a ``TypeError`` that says what was returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optuna_spark.wire import messages as m
from optuna_spark.wire._errors import encode_error


def judge_returned(run_id: str, trial_id: int, value: Any) -> m.TellValues | m.TellFailed:
    """What to tell the driver about ``value``, returned by the objective of ``trial_id``."""
    if value is None:
        return m.TellValues(run_id, trial_id, None)  # Optuna: "The value None could not ..."
    items = list(value) if isinstance(value, Sequence) else [value]
    floats: list[float] = []
    unusable: list[str] = []
    for v in items:
        try:
            f = float(v)
        except (ValueError, TypeError):
            unusable.append(f"The value {v!r} could not be cast to float")
            continue
        try:
            math.isnan(v)
        except TypeError as e:
            error = TypeError(
                f"The objective returned {value!r}, which Optuna cannot check ({e}): return "
                "a number, or a sequence of numbers for a multi-objective study."
            )
            return m.TellFailed(run_id, trial_id, encode_error(error), False)
        floats.append(f)
    if unusable:
        return m.TellValues(run_id, trial_id, None, "; ".join(unusable))
    return m.TellValues(run_id, trial_id, floats)
