"""PyTorch: a forward pass that records each module's shapes, to check a removal on it.

What ``remove_modules`` checks with an example input: each removed module takes one tensor and
gives one, and every kept module of the copy receives the shapes it received in the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

_Shapes = Any  # a tensor's shape as a tuple, or a structure (tuple, dict) of them


@dataclasses.dataclass
class _Call:
    """One call of a module: the shapes it received and gave."""

    inputs: _Shapes  # the shape of its one tensor argument, or the shapes of all its arguments
    single_input: bool  # one positional tensor, no keyword arguments
    output: _Shapes = None
    single_output: bool = False


class Calls:
    """Hooks on every module of a model (by name, as in ``named_modules()``) that record each
    call's shapes, in call order."""

    def __init__(self, torch: Any, model: Any, *, skip: Sequence[str] = ()) -> None:
        self.calls: dict[str, list[_Call]] = {}
        self.order: list[tuple[str, int]] = []  # (name, index of the call), in call order
        self.output: _Shapes = None
        self._torch = torch
        self._handles: list[Any] = []
        for name, module in model.named_modules():
            if name not in skip:
                running: list[_Call] = []  # calls begun and not ended (a module may recurse)
                self._handles += [
                    module.register_forward_pre_hook(self._pre(name, running), with_kwargs=True),
                    module.register_forward_hook(self._post(running)),
                ]

    def _pre(self, name: str, running: list[_Call]) -> Callable[..., None]:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            single = len(args) == 1 and not kwargs and isinstance(args[0], self._torch.Tensor)
            call = _Call(_shapes(self._torch, args[0] if single else (args, kwargs)), single)
            calls = self.calls.setdefault(name, [])
            self.order.append((name, len(calls)))
            calls.append(call)
            running.append(call)

        return hook

    def _post(self, running: list[_Call]) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            call = running.pop()
            call.output = _shapes(self._torch, output)
            call.single_output = isinstance(output, self._torch.Tensor)

        return hook

    def run(self, model: Any, inputs: tuple[Any, ...]) -> None:
        """Call ``model(*inputs)`` in eval mode without gradients, then remove the hooks."""
        training = {m: m.training for m in model.modules()}
        try:
            model.eval()
            with self._torch.no_grad():
                self.output = _shapes(self._torch, model(*inputs))
        finally:
            for m, flag in training.items():
                m.training = flag
            for handle in self._handles:
                handle.remove()

    def changed(self, names: Sequence[str]) -> list[tuple[str, _Shapes, _Shapes]]:
        """Which of ``names`` gave another shape than they received (at their first such call),
        with both shapes."""
        out = []
        for name in names:
            for call in self.calls.get(name, []):
                if call.inputs != call.output:
                    out.append((name, call.inputs, call.output))
                    break
        return out


def _shapes(torch: Any, value: Any) -> _Shapes:
    """A tensor's shape, or the structure of shapes of tensors in tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_shapes(torch, v) for v in value)
    if isinstance(value, Mapping):
        return {k: _shapes(torch, v) for k, v in value.items()}
    return type(value).__name__


def check_removable(torch: Any, model: Any, remove: list[str], inputs: tuple[Any, ...]) -> Calls:
    """Run ``model`` once; refuse a module that ``nn.Identity`` cannot stand in for.

    Args:
        torch: The ``torch`` module.
        model: The model.
        remove: The names of the submodules to replace.
        inputs: The forward's positional arguments.

    Returns:
        The calls of every module (a removed module that did not run has none).

    Raises:
        ValueError: The model fails on ``inputs``, or a removed module takes several inputs or
            gives something other than one tensor.
    """
    calls = Calls(torch, model)
    try:
        calls.run(model, inputs)
    except Exception as e:
        raise ValueError(
            f"{type(model).__name__} fails on example_input ({type(e).__name__}: {e}); pass a "
            "batch that the model accepts."
        ) from e
    for name in remove:
        for call in calls.calls.get(name, []):
            if not call.single_input:
                raise ValueError(
                    f"Cannot remove module {name!r}: it receives {call.inputs} (positional and "
                    "keyword arguments), not one tensor, so there is no single input for "
                    "nn.Identity to hand on. Replace it yourself."
                )
            if not call.single_output:
                raise ValueError(
                    f"Cannot remove module {name!r}: it gives {call.output}, not one tensor, so "
                    "nn.Identity (which gives its input) cannot stand in for it. Replace it "
                    "yourself."
                )
    return calls


def check_consumers(
    torch: Any, model: Any, new: Any, remove: list[str], inputs: tuple[Any, ...], old: Calls
) -> None:
    """Run the copy: every kept module must receive what it received in ``model``."""
    calls = Calls(torch, new, skip=remove)
    failure: Exception | None = None
    try:
        calls.run(new, inputs)
    except Exception as e:
        failure = e
    for name, i in calls.order:
        before = old.calls.get(name, [])
        got = calls.calls[name][i].inputs
        want = before[i].inputs if i < len(before) else "no call"
        if got != want:
            _refuse(remove, old, f"module {name!r} would receive", got, want, failure)
    if failure is not None:
        changed = "".join(
            f"; {name!r} gives {shape_out} for {shape_in}"
            for name, shape_in, shape_out in old.changed(remove)
        )
        raise ValueError(
            f"{type(model).__name__} without {remove} fails on example_input "
            f"({type(failure).__name__}: {failure}){changed}. Remove modules whose output has "
            "their input's shape, or replace them yourself."
        ) from failure
    if calls.output != old.output:
        _refuse(remove, old, "the model would give", calls.output, old.output, None)


def _refuse(
    remove: list[str],
    calls: Calls,
    consumer: str,  # "module 'x' would receive", "the model would give"
    got: _Shapes,
    want: _Shapes,
    failure: Exception | None,
) -> NoReturn:
    advice = (
        "Only a module (or a group of modules) whose output has its input's shape can be "
        "replaced by nn.Identity: remove a shape-preserving block instead, or replace the "
        "module yourself with one of the right shape."
    )
    changed = calls.changed(remove)
    if len(changed) == 1:
        name, shape_in, shape_out = changed[0]
        message = (
            f"Cannot remove module {name!r}: its input has shape {shape_in} but its output has "
            f"shape {shape_out}, so {consumer} {got} instead of {want}. {advice}"
        )
    else:
        about = [f"{n!r} ({a} -> {b})" for n, a, b in changed] or [repr(n) for n in remove]
        message = (
            f"Cannot remove modules {', '.join(about)}: {consumer} {got} instead of {want}. "
            f"{advice}"
        )
    raise ValueError(message) from failure
