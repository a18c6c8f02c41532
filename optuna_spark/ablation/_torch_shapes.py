"""PyTorch: whether modules keep their input's shape, as far as their definitions tell.

What ``remove_modules`` checks without an example input: ``Linear`` features and convolution
channels (consecutive modules of an ``nn.Sequential`` together); activations, dropouts and
normalizations keep any shape; other modules cannot be checked this way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple
from typing import NoReturn

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


class _Declared(NamedTuple):
    """What a module's definition says about its shapes: it maps ``n_in`` ``what`` (features
    of the last axis, channels) to ``n_out``."""

    what: str  # "" when it keeps any shape
    n_in: int
    n_out: int


_KEEPS = _Declared("", 0, 0)


def check_declared(torch: Any, model: Any, remove: list[str]) -> list[str]:
    """Refuse what the modules' definitions rule out (without an example input).

    Args:
        torch: The ``torch`` module.
        model: The model.
        remove: The names of the submodules to replace by ``nn.Identity``.

    Returns:
        The names of the modules whose shapes their definitions do not tell.

    Raises:
        ValueError: A module, or a run of modules of an ``nn.Sequential``, changes the shape.
    """
    unchecked: list[str] = []
    for unit in _units(torch, model, remove):
        net = _net(torch, [model.get_submodule(n) for n in unit])
        if net is None:
            unchecked.extend(unit)
        elif net.n_in != net.n_out:
            _refuse_unit(unit, net)
    return unchecked


def _refuse_unit(unit: list[str], net: _Declared) -> NoReturn:
    what, n_in, n_out = net
    about = (
        f"module {unit[0]!r}: its input has {n_in} {what} but its output has {n_out}, so its"
        if len(unit) == 1
        else f"modules {unit}: their input has {n_in} {what} but their output {n_out}, so their"
    )
    raise ValueError(
        f"Cannot remove {about} consumers would receive {n_in} {what} instead of "
        f"{n_out}. Remove a shape-preserving module instead, or replace it yourself "
        "with a module of the right shape. If other removed modules or code restore the "
        "shape (a bottleneck pair outside an nn.Sequential), pass example_input= to "
        "check the removal on a forward pass."
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
