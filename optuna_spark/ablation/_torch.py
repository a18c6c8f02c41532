"""PyTorch: a model with some submodules replaced by ``nn.Identity``.

PyTorch is imported only when one of these functions needs it; the checks ``is_module``,
``is_tensor`` and ``is_dataset`` never import it (nothing can be a PyTorch object before it is).
The shape checks are in ``_torch_shapes`` (from the modules' definitions) and ``_torch_calls``
(on a forward pass); data without a feature is in ``_torch_data``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from optuna_spark.ablation._arms import matches
from optuna_spark.ablation._data import _as_names
from optuna_spark.ablation._torch_calls import check_consumers
from optuna_spark.ablation._torch_calls import check_removable
from optuna_spark.ablation._torch_shapes import check_declared

if TYPE_CHECKING:
    import torch

    M = TypeVar("M", bound=torch.nn.Module)
else:
    M = TypeVar("M")

_logger = logging.getLogger(__name__)

_TORCH_EXTRA = "pip install 'optuna-spark[torch]'"


def import_torch() -> Any:
    """The ``torch`` module, or an ``ImportError`` naming the extra to install."""
    try:
        return importlib.import_module("torch")
    except ImportError as e:
        raise ImportError(
            f"PyTorch model surgery and datasets need PyTorch; install it with `{_TORCH_EXTRA}`."
        ) from e


def is_module(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.nn.Module`` (without importing PyTorch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def is_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.Tensor`` (without importing PyTorch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_dataset(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.utils.data.Dataset`` (without importing PyTorch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.utils.data.Dataset)


# ---------------------------------------------------------------------------------------------
# Models.


def remove_modules(  # long: the public docstring, with an example
    model: M,
    names: str | Sequence[str],
    *,
    example_input: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
) -> M:
    """A deep copy of a PyTorch model in which each named submodule is an ``nn.Identity``.

    A submodule that takes one tensor and gives one can be left out by handing on its input.
    That works when the input has the output's shape (a ``Linear`` of the previous width, a
    normalization, a dropout, the branch of a residual block), or, for a group of modules, when
    the group as a whole keeps the shape (a bottleneck pair).

    With ``example_input``, the model and the copy run once on it (in eval mode, under
    ``torch.no_grad()``; the training flags are restored) and every kept module must receive
    the shapes it received in the model. Without it, only what modules declare is checked:
    ``Linear`` features and convolution channels (consecutive modules of an ``nn.Sequential``
    together), while activations, dropouts and normalizations keep the shape. Any other module
    (your own blocks) is then replaced unchecked, and a warning says so: pass ``example_input``
    to check it.

    Args:
        model: A ``torch.nn.Module`` (a ``lightning.LightningModule`` too). It is not changed.
        names: Dotted submodule names as in ``model.named_modules()`` (``"encoder.block2"``);
            an entry ending in ``*`` matches every submodule whose name starts with what
            precedes it (``"encoder.block*"``). A module inside another removed one is left
            out with it.
        example_input: A batch for ``model``: a tensor, or a tuple of the forward's positional
            arguments.

    Returns:
        A deep copy of ``model`` (same class, weights and training flag) with the named
        submodules replaced by ``torch.nn.Identity()``.

    Raises:
        ValueError: A name matches no submodule or is ``""`` (the model itself); a module's
            output would not have its input's shape (the message names the module and both
            shapes); with ``example_input``, a removed module takes several inputs or gives
            something other than one tensor, or the copy fails on it.
        TypeError: ``model`` is not a ``torch.nn.Module``.
        ImportError: PyTorch is not installed (``pip install 'optuna-spark[torch]'``).

    Example:

        .. testcode::

            import torch
            from optuna_spark.ablation import remove_modules

            model = torch.nn.Sequential(
                torch.nn.Linear(4, 8),
                torch.nn.ReLU(),
                torch.nn.Linear(8, 8),
                torch.nn.ReLU(),
                torch.nn.Linear(8, 1),
            )
            smaller = remove_modules(model, ["2", "3"], example_input=torch.zeros(2, 4))
            assert isinstance(smaller[2], torch.nn.Identity)
            assert isinstance(model[2], torch.nn.Linear)  # the model is untouched
            assert smaller(torch.zeros(2, 4)).shape == (2, 1)
    """
    torch = import_torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, but got {type(model).__name__}.")
    remove = _outermost(_matching(model, _as_names("names", names)))
    if example_input is None:
        _warn_unchecked(check_declared(torch, model, remove))
        return _replaced(torch, model, remove)
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    # A first forward pass initializes lazy modules: leave that to the user's model.
    lazy = any(torch.nn.parameter.is_lazy(p) for p in model.parameters())
    reference = copy.deepcopy(model) if lazy else model
    before = check_removable(torch, reference, remove, inputs)
    _warn_not_run([name for name in remove if name not in before.calls])
    new = _replaced(torch, model, remove)
    check_consumers(torch, reference, new, remove, inputs, before)
    return new


def _warn_unchecked(names: list[str]) -> None:
    if names:
        _logger.warning(
            "Replacing %s by nn.Identity without checking their shapes: pass example_input= "
            "to check on a forward pass that their output has their input's shape.",
            names,
        )


def _warn_not_run(names: list[str]) -> None:
    for name in names:
        _logger.warning(
            "Module %r does not run on example_input, so replacing it by nn.Identity "
            "changes nothing for such input.",
            name,
        )


def _replaced(torch: Any, model: M, remove: list[str]) -> M:
    """A deep copy of ``model`` with an ``nn.Identity`` in place of each of ``remove``."""
    new = copy.deepcopy(model)
    for name in remove:
        parent, _, attr = name.rpartition(".")
        setattr(new.get_submodule(parent), attr, torch.nn.Identity())
    return new


def _matching(model: Any, patterns: Sequence[str]) -> list[str]:
    """Names of ``model``'s submodules that ``patterns`` match, in ``named_modules`` order."""
    names = [n for n, _ in model.named_modules() if n]
    hit: set[str] = set()
    for pattern in patterns:
        if pattern == "":
            raise ValueError(
                f"Cannot remove {pattern!r}: it is the model itself. Name its submodules "
                f"instead, e.g. {names[:3]}."
            )
        found = [n for n in names if matches(pattern, n)]
        if not found:
            how = "matching" if pattern.endswith("*") else "named"
            close = difflib.get_close_matches(pattern.rstrip("*"), names, n=3)
            listed = names if len(names) <= 30 else [*names[:30], f"... {len(names) - 30} more"]
            hint = f"did you mean {close}? Its" if close else "its"
            raise ValueError(
                f"{type(model).__name__} has no submodule {how} {pattern!r}; {hint} "
                f"submodules are {listed}."
            )
        hit.update(found)
    return [n for n in names if n in hit]


def _outermost(names: list[str]) -> list[str]:
    """``names`` without those inside another one (a removed module takes its own along)."""
    out: list[str] = []
    for name in names:
        if not any(name.startswith(kept + ".") for kept in out):
            out.append(name)
    return out
