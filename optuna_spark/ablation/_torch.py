"""PyTorch: a model with some submodules replaced by ``nn.Identity``, data without a feature.

PyTorch is imported only when one of these functions needs it; the checks ``is_module``,
``is_tensor`` and ``is_dataset`` never import it (nothing can be a PyTorch object before it is).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import logging
import sys
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import NoReturn
from typing import TypeVar

from optuna_spark.ablation._arms import matches
from optuna_spark.ablation._data import _as_names
from optuna_spark.ablation._data import _check_known
from optuna_spark.ablation._data import _without

if TYPE_CHECKING:
    import torch

    M = TypeVar("M", bound=torch.nn.Module)
else:
    M = TypeVar("M")

_logger = logging.getLogger(__name__)

_TORCH_EXTRA = "pip install 'optuna-spark[torch]'"

# Modules whose output has their input's shape, whatever their configuration.
_KEEP_SHAPE = (
    "Identity",
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "PReLU",
    "RReLU",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Mish",
    "Sigmoid",
    "Tanh",
    "Hardtanh",
    "Hardswish",
    "Hardsigmoid",
    "Softplus",
    "Softsign",
    "Softshrink",
    "Hardshrink",
    "Tanhshrink",
    "LogSigmoid",
    "Threshold",
    "Softmax",
    "Softmin",
    "LogSoftmax",
    "Softmax2d",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LazyBatchNorm1d",
    "LazyBatchNorm2d",
    "LazyBatchNorm3d",
    "SyncBatchNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LazyInstanceNorm1d",
    "LazyInstanceNorm2d",
    "LazyInstanceNorm3d",
    "LayerNorm",
    "GroupNorm",
    "LocalResponseNorm",
    "RMSNorm",
)
_CONVS = ("Conv1d", "Conv2d", "Conv3d")
_CONV_TRANSPOSES = ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
_Shapes = Any  # a tensor's shape as a tuple, or a structure (tuple, dict) of them


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


def remove_modules(
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
        _check_declared(torch, model, remove)
        return _replaced(torch, model, remove)
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    # A first forward pass initializes lazy modules: leave that to the user's model.
    lazy = any(torch.nn.parameter.is_lazy(p) for p in model.parameters())
    reference = copy.deepcopy(model) if lazy else model
    before = _check_removable(torch, reference, remove, inputs)
    new = _replaced(torch, model, remove)
    _check_consumers(torch, reference, new, remove, inputs, before)
    return new


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


class _Declared(NamedTuple):
    """What a module's definition says about its shapes: it maps ``n_in`` ``what`` (features
    of the last axis, channels) to ``n_out``."""

    what: str  # "" when it keeps any shape
    n_in: int
    n_out: int


_KEEPS = _Declared("", 0, 0)


def _check_declared(torch: Any, model: Any, remove: list[str]) -> None:
    """Without an example input: refuse what the modules' definitions rule out, warn about
    the rest that cannot be checked."""
    unchecked: list[str] = []
    for unit in _units(torch, model, remove):
        net = _net(torch, [model.get_submodule(n) for n in unit])
        if net is None:
            unchecked.extend(unit)
        elif net.n_in != net.n_out:
            what, n_in, n_out = net
            about = (
                f"module {unit[0]!r}: its input has {n_in} {what} but its output has {n_out}, "
                "so its"
                if len(unit) == 1
                else f"modules {unit}: their input has {n_in} {what} but their output {n_out}, "
                "so their"
            )
            raise ValueError(
                f"Cannot remove {about} consumers would receive {n_in} {what} instead of "
                f"{n_out}. Remove a shape-preserving module instead, or replace it yourself "
                "with a module of the right shape. If other removed modules or code restore the "
                "shape (a bottleneck pair outside an nn.Sequential), pass example_input= to "
                "check the removal on a forward pass."
            )
    if unchecked:
        _logger.warning(
            "Replacing %s by nn.Identity without checking their shapes: pass example_input= "
            "to check on a forward pass that their output has their input's shape.",
            unchecked,
        )


def _units(torch: Any, model: Any, remove: list[str]) -> list[list[str]]:
    """``remove`` grouped into runs of consecutive children of an ``nn.Sequential`` (which
    together map one shape to another); any other module is a unit by itself."""
    units: list[list[str]] = []
    last: tuple[str, int] | None = None  # (parent, position) of the previous name
    for name in remove:
        parent, _, attr = name.rpartition(".")
        container = model.get_submodule(parent)
        if isinstance(container, torch.nn.Sequential):
            position = [n for n, _ in container.named_children()].index(attr)
            if units and last == (parent, position - 1):
                units[-1].append(name)
            else:
                units.append([name])
            last = (parent, position)
        else:
            units.append([name])
            last = None
    return units


def _net(torch: Any, modules: Sequence[Any]) -> _Declared | None:
    """What modules run one after the other do to the shape, as far as they declare it."""
    first = last = _KEEPS
    for module in modules:
        declared = _declared(torch, module)
        if declared is None or (first.what and declared.what not in ("", first.what)):
            return None
        if declared.what:
            first = first if first.what else declared
            last = declared
    return _Declared(first.what, first.n_in, last.n_out)


def _declared(torch: Any, module: Any) -> _Declared | None:
    nn = torch.nn
    keeping, convs, transposed = _module_types(torch)
    if isinstance(module, nn.Sequential):
        return _net(torch, list(module))
    if isinstance(module, keeping):
        return _KEEPS
    if any(nn.parameter.is_lazy(p) for p in module.parameters(recurse=False)):
        return None
    if isinstance(module, nn.Linear):
        return _Declared("features", module.in_features, module.out_features)
    if isinstance(module, convs + transposed) and _keeps_spatial_size(
        module, transposed=isinstance(module, transposed)
    ):
        return _Declared("channels", module.in_channels, module.out_channels)
    return None


@functools.cache
def _module_types(torch: Any) -> tuple[tuple[type[Any], ...], ...]:
    """The classes of modules that keep any shape, of convolutions and of transposed ones."""
    nn = torch.nn
    return (
        tuple(getattr(nn, n) for n in _KEEP_SHAPE if hasattr(nn, n)),
        tuple(getattr(nn, n) for n in _CONVS),
        tuple(getattr(nn, n) for n in _CONV_TRANSPOSES),
    )


def _keeps_spatial_size(conv: Any, *, transposed: bool) -> bool:
    if conv.padding == "same":
        return True
    if isinstance(conv.padding, str):  # "valid"
        return all(k == 1 for k in conv.kernel_size)
    for i, k in enumerate(conv.kernel_size):
        grow = conv.dilation[i] * (k - 1) - 2 * conv.padding[i]
        if transposed:
            grow += conv.output_padding[i]
        else:
            grow = -grow
        if conv.stride[i] != 1 or grow != 0:
            return False
    return True


@dataclasses.dataclass
class _Call:
    """One call of a module: the shapes it received and gave."""

    inputs: _Shapes  # the shape of its one tensor argument, or the shapes of all its arguments
    single_input: bool  # one positional tensor, no keyword arguments
    output: _Shapes = None
    single_output: bool = False


class _Calls:
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


def _check_removable(torch: Any, model: Any, remove: list[str], inputs: tuple[Any, ...]) -> _Calls:
    """Run ``model`` once; refuse a module that ``nn.Identity`` cannot stand in for."""
    calls = _Calls(torch, model)
    try:
        calls.run(model, inputs)
    except Exception as e:
        raise ValueError(
            f"{type(model).__name__} fails on example_input ({type(e).__name__}: {e}); pass a "
            "batch that the model accepts."
        ) from e
    for name in remove:
        if name not in calls.calls:
            _logger.warning(
                "Module %r does not run on example_input, so replacing it by nn.Identity "
                "changes nothing for such input.",
                name,
            )
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


def _check_consumers(
    torch: Any, model: Any, new: Any, remove: list[str], inputs: tuple[Any, ...], old: _Calls
) -> None:
    """Run the copy: every kept module must receive what it received in ``model``."""
    calls = _Calls(torch, new, skip=remove)
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
    calls: _Calls,
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


# ---------------------------------------------------------------------------------------------
# Data.


def drop_from_tensor(
    tensor: Any, drop: Sequence[str], feature_names: Sequence[str] | None, feature_axis: int
) -> Any:
    """``tensor`` without the slices of ``drop`` along ``feature_axis``, named by
    ``feature_names`` (for :func:`drop_features`)."""
    if feature_names is None:
        raise ValueError(
            "drop_features needs feature_names=[...] (the name of each slice along "
            "feature_axis, the last axis by default) to leave a feature out of a torch.Tensor."
        )
    names = list(_as_names("feature_names", feature_names))
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"feature_names must be distinct, but {twice} appear more than once.")
    if not -tensor.dim() <= feature_axis < tensor.dim():
        raise ValueError(
            f"feature_axis {feature_axis} is not an axis of a tensor of shape "
            f"{tuple(tensor.shape)}."
        )
    if tensor.shape[feature_axis] != len(names):
        raise ValueError(
            f"The tensor has {tensor.shape[feature_axis]} features along axis {feature_axis} "
            f"(shape {tuple(tensor.shape)}), but feature_names has {len(names)}: {names}."
        )
    _check_known(drop, names, "tensor's features")
    if not drop:
        return tensor
    torch = import_torch()
    keep = [i for i, name in enumerate(names) if name not in drop]
    return tensor.index_select(feature_axis, torch.tensor(keep, device=tensor.device))


def drop_from_dataset(dataset: Any, drop: Sequence[str]) -> Any:
    """``dataset`` without ``drop`` in each item (for :func:`drop_features`).

    A map-style dataset's first item is checked at once; an iterable dataset's items are
    checked as they come.
    """
    torch = import_torch()
    if not isinstance(dataset, torch.utils.data.IterableDataset):
        first = _first_item(dataset)
        if first is not None:
            _drop_from_item(first[0], drop)
    if not drop:
        return dataset
    return _without_features(dataset, tuple(drop))


def _first_item(dataset: Any) -> tuple[Any] | None:
    """``(dataset[0],)``, or ``None`` for a dataset that is empty, has no length or whose
    keys are not positions."""
    try:
        if len(dataset) == 0:
            return None
    except TypeError:
        return None
    try:
        return (dataset[0],)
    except LookupError:
        return None


def _drop_from_item(item: Any, drop: Sequence[str]) -> Any:
    if isinstance(item, Mapping):
        _check_known(drop, [str(k) for k in item], "dataset's features")
        return _without(dict(item), drop)
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], Mapping):
        features = _drop_from_item(item[0], drop)
        if isinstance(item, list):
            return [features, *item[1:]]
        if hasattr(item, "_fields"):  # a namedtuple
            return type(item)(features, *item[1:])
        return (features, *item[1:])
    raise TypeError(
        "A torch Dataset must yield a dict of features, or a tuple whose first item is a dict "
        f"of features (features, label), to leave a feature out; it yields {type(item).__name__}."
    )


def _without_features(dataset: Any, drop: tuple[str, ...]) -> Any:
    """A dataset whose items are ``dataset``'s without ``drop`` (picklable: it pickles as a
    call of this function, so its classes can be made only once PyTorch is imported)."""
    map_style, iterable = _dataset_classes()
    torch = import_torch()
    cls = iterable if isinstance(dataset, torch.utils.data.IterableDataset) else map_style
    return cls(dataset, drop)


@functools.cache
def _dataset_classes() -> tuple[type[Any], type[Any]]:
    import_torch()
    from torch.utils.data import Dataset
    from torch.utils.data import IterableDataset

    class WithoutFeatures(Dataset[Any]):
        """The items of ``dataset`` without the features ``drop``."""

        def __init__(self, dataset: Any, drop: tuple[str, ...]) -> None:
            self.dataset = dataset
            self.drop = drop

        def __getitem__(self, index: Any) -> Any:
            return _drop_from_item(self.dataset[index], self.drop)

        def __len__(self) -> int:
            return len(self.dataset)

        def __reduce__(self) -> tuple[Any, ...]:
            return (_without_features, (self.dataset, self.drop))

        def __repr__(self) -> str:
            return f"{type(self).__name__}({self.dataset!r}, drop={list(self.drop)})"

    class IterableWithoutFeatures(IterableDataset[Any]):
        """The items of the iterable ``dataset`` without the features ``drop``."""

        def __init__(self, dataset: Any, drop: tuple[str, ...]) -> None:
            self.dataset = dataset
            self.drop = drop

        def __iter__(self) -> Iterator[Any]:
            return (_drop_from_item(item, self.drop) for item in self.dataset)

        def __len__(self) -> int:
            return len(self.dataset)  # a TypeError when the dataset has no length

        def __reduce__(self) -> tuple[Any, ...]:
            return (_without_features, (self.dataset, self.drop))

        def __repr__(self) -> str:
            return f"{type(self).__name__}({self.dataset!r}, drop={list(self.drop)})"

    return WithoutFeatures, IterableWithoutFeatures
