"""Checks of user input shared by the public entry points, with messages that say what to do."""

from __future__ import annotations


def check_positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    """Raise a clear error unless ``value`` is ``None`` or a positive number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, but got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be {'non-negative' if allow_zero else 'positive'}, "
            f"but got {name}={value!r}."
        )


def check_catch(catch: object) -> None:
    """``catch`` as ``Study.optimize`` accepts it: a tuple (of exception types)."""
    if not isinstance(catch, tuple):
        raise TypeError(
            f"The catch argument is of type '{type(catch).__name__}' but must be a tuple."
        )
