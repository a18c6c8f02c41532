"""Shipping an objective to Spark's executors: lazily loaded modules go by reference, and what
cannot be pickled is named by where it was found.

Spark pickles the job's closure with cloudpickle, which pickles modules by reference (by name,
imported again where unpickled), but only objects whose class is exactly ``ModuleType``: a
lazily loaded module (``optuna.integration``, whose class subclasses ``ModuleType``) fails with
"cannot pickle '_IntegrationModule' object" as soon as an objective names
``optuna.integration.X``. :func:`allow_lazy_modules` registers such classes, so that they too
go by reference.
"""

from __future__ import annotations

import copyreg
import functools
import importlib
import sys
import types
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

#: How deep :func:`unpicklable_path` looks into attributes, closures and containers.
_DEPTH = 5


def _by_reference(module: types.ModuleType) -> tuple[Callable[[str], Any], tuple[str]]:
    return importlib.import_module, (module.__name__,)


def allow_lazy_modules() -> None:
    """Pickle every loaded module whose class subclasses ``ModuleType`` by reference."""
    for module in list(sys.modules.values()):
        cls = type(module)
        if (
            isinstance(module, types.ModuleType)
            and cls is not types.ModuleType
            and cls not in copyreg.dispatch_table
        ):
            copyreg.pickle(cls, _by_reference)


def _parts(obj: Any) -> Iterator[tuple[str, Any]]:
    """What pickling ``obj`` pickles too, each with how to name it."""
    if isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
        yield ".__func__", obj.__func__
    elif isinstance(obj, functools.partial):
        yield ".func", obj.func
        for i, arg in enumerate(obj.args):
            yield f".args[{i}]", arg
        for key, value in obj.keywords.items():
            yield f".keywords[{key!r}]", value
    elif isinstance(obj, types.FunctionType):
        code = obj.__code__
        for var, cell in zip(code.co_freevars, obj.__closure__ or (), strict=False):
            yield f" (its variable {var!r})", cell.cell_contents
        for global_name in code.co_names:
            if global_name in obj.__globals__:
                yield f" (its global {global_name!r})", obj.__globals__[global_name]
        for i, default in enumerate(obj.__defaults__ or ()):
            yield f" (its default #{i})", default
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, item in enumerate(obj):
            yield f"[{i}]", item
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield f"[{key!r}]", value
    elif not isinstance(obj, (type, types.ModuleType)) and hasattr(obj, "__dict__"):
        for attr, value in vars(obj).items():
            yield f".{attr}", value


def unpicklable_path(obj: Any, name: str, dumps: Callable[[Any], bytes]) -> str | None:
    """Where in ``obj`` (called ``name``) pickling fails: the deepest part that cannot be
    pickled, as a path such as ``objective (its variable 'study')._storage``; ``None`` when
    ``obj`` pickles."""

    def fails(x: Any) -> bool:
        try:
            dumps(x)
        except Exception:
            return True
        return False

    if not fails(obj):
        return None
    path, seen = name, {id(obj)}
    for _ in range(_DEPTH):
        for label, part in _parts(obj):
            if id(part) not in seen and fails(part):
                seen.add(id(part))
                obj, path = part, path + label
                break
        else:
            break
    return f"{path} (a {type(obj).__name__})"
