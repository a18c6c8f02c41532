"""Whether a sampler may block inside ``study.ask()`` to wait for a running trial's result.

In ``study.optimize(n_jobs=...)`` an adaptive ablation sampler waits in ``before_trial`` until a
running trial's result decides what comes next. A driver that asks for its workers must never
block there (it holds its sampler lock, which the running trials need): it asks the sampler's
``availability`` first and parks the worker's request itself, and it asks inside
:func:`never_wait`, so that a sampler that finds nothing to hand out after all answers at once.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_NEVER_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "optuna_spark_never_wait", default=False
)


@contextlib.contextmanager
def never_wait() -> Iterator[None]:
    """Samplers asked within this block must not wait for running trials."""
    token = _NEVER_WAIT.set(True)
    try:
        yield
    finally:
        _NEVER_WAIT.reset(token)


def may_wait() -> bool:
    """Whether the caller of ``study.ask()`` lets the sampler wait for a running trial."""
    return not _NEVER_WAIT.get()
