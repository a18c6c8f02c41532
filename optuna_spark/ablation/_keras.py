"""Keras 3 model surgery: a model without some of its layers, consumers wired to their input.

``ablate_model`` also takes PyTorch models, and hands them to ``_torch.remove_modules``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from optuna.trial import BaseTrial

from optuna_spark.ablation._arms import Arm
from optuna_spark.ablation._arms import as_arm
from optuna_spark.ablation._arms import matches
from optuna_spark.ablation._imports import import_keras
from optuna_spark.ablation._torch import is_module as is_torch_module
from optuna_spark.ablation._torch import remove_modules

_logger = logging.getLogger(__name__)


def remove_layers(model: Any, layers: str | Sequence[str], *, copy_weights: bool = True) -> Any:
    """A copy of a Keras 3 model without ``layers``; each one's consumers get its input.

    A layer that takes one tensor and gives one is left out by handing its consumers its input
    instead of its output. That works when the input has the output's shape (a hidden ``Dense``
    of the previous width, a normalization, a dropout, the branch of a residual block), or,
    for a group of layers, when the group as a whole keeps the shape (a bottleneck pair). The
    copy's other layers are new layers of the same configuration and names.

    Args:
        model: A ``keras.Sequential`` with a known input shape, or a functional
            ``keras.Model``. Layers are found among the model's own (top-level) layers.
        layers: Layer names; an entry ending in ``*`` matches every layer whose name starts
            with what precedes it.
        copy_weights: Give the copy's layers the model's weights. For a freshly built model
            this keeps the base arm's initialization (under the same seed) in every arm, so
            arms differ only by what they leave out. ``False`` initializes them anew.

    Returns:
        A new model (the original is untouched), compiled like ``model`` if it was compiled.

    Raises:
        ValueError: A name matches no layer, a layer is an input layer, has several inputs or
            outputs, or its consumers would receive another shape than before (the message
            names the layer and both shapes).
        TypeError: ``model`` is a subclassed model, whose graph cannot be rewired.
        ImportError: Keras 3 is not installed (``pip install 'optuna-spark[tensorflow]'``).

    Example:

        .. testcode::

            import keras
            from optuna_spark.ablation import remove_layers

            model = keras.Sequential(
                [
                    keras.Input((4,)),
                    keras.layers.Dense(8, name="hidden_1"),
                    keras.layers.Dense(8, name="hidden_2"),
                    keras.layers.Dense(1, name="price"),
                ]
            )
            smaller = remove_layers(model, "hidden_2")
            assert [layer.name for layer in smaller.layers] == ["hidden_1", "price"]
    """
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model, but got {type(model).__name__}.")
    remove = _layers_to_remove(keras, model, layers)
    new = _rebuilt(keras, model, _Rewire(keras, model, remove))
    if copy_weights:
        _copy_weights(keras, model, new)
    if getattr(model, "compiled", False):
        _compile_like(model, new, remove)
    return new


def _layers_to_remove(keras: Any, model: Any, layers: str | Sequence[str]) -> set[str]:
    """The names of the model's layers that ``layers`` match (none an input layer)."""
    patterns = (layers,) if isinstance(layers, str) else tuple(layers)
    names = [layer.name for layer in model.layers]
    remove: set[str] = set()
    for pattern in patterns:
        hit = [n for n in names if matches(pattern, n)]
        if not hit:
            how = "matching" if pattern.endswith("*") else "named"
            raise ValueError(
                f"Model {model.name!r} has no layer {how} {pattern!r}; its layers are {names}."
            )
        remove.update(hit)
    for name in sorted(remove):
        if isinstance(model.get_layer(name), keras.layers.InputLayer):
            raise ValueError(f"Cannot remove layer {name!r}: it is an input of the model.")
    return remove


def _rebuilt(keras: Any, model: Any, rewire: _Rewire) -> Any:
    """The model rebuilt without the layers ``rewire`` removes, its outputs' shapes checked."""
    if isinstance(model, keras.Sequential):
        return _without_in_sequential(keras, model, rewire)
    if not _is_functional(model):
        raise TypeError(
            f"Model {model.name!r} is a subclassed {type(model).__name__}; only Sequential and "
            "functional models can have layers removed. Build the model without the layer "
            "in the objective instead (see is_enabled)."
        )
    new = keras.models.clone_model(model, call_function=rewire)
    for i, (old, out) in enumerate(zip(model.outputs, new.outputs, strict=True)):
        where = f"the model's output {i}" if len(model.outputs) > 1 else "the model's output"
        rewire.check(where, [out], [[tuple(old.shape)]])
    return new


def _copy_weights(keras: Any, model: Any, new: Any) -> None:
    """Give the new model's layers the weights of the model's layers of the same name."""
    for layer in new.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        source = model.get_layer(layer.name)
        if source.built and source.weights:
            layer.set_weights(source.get_weights())


def _compile_like(model: Any, new: Any, remove: set[str]) -> None:
    """Compile the new model as the model was, or warn when its configuration does not load."""
    try:
        new.compile_from_config(model.get_compile_config())
    except Exception as e:  # an optimizer or loss that does not serialize
        _logger.warning(
            "The model without %s could not be compiled like the original (%s: %s); "
            "compile it yourself.",
            sorted(remove),
            type(e).__name__,
            e,
        )


def ablate_model(
    trial_or_arm: BaseTrial | Arm,
    model: Any,
    *,
    copy_weights: bool = True,
    example_input: Any = None,
) -> Any:
    """The model of this trial's arm: without the left-out layer or group of layers, if any.

    Args:
        trial_or_arm: The objective's trial, or its :class:`Arm` from :func:`get_arm`.
        model: A Keras 3 Sequential or functional model, a ``torch.nn.Module`` (a Lightning
            module too), or a function without arguments that builds one. A function is called
            in every arm, so seed first (for example ``keras.utils.set_random_seed(arm.seed)``
            or ``torch.manual_seed(arm.seed)``) and every arm starts from the same
            initialization.
        copy_weights: Keras only; see :func:`remove_layers`. A PyTorch model's copy always has
            its weights.
        example_input: PyTorch only: a batch to check the removal on a forward pass; see
            :func:`remove_modules`.

    Returns:
        The model itself (or the function's model) when the arm removes no layer; otherwise a
        new model without the arm's layers, made by :func:`remove_layers` (Keras) or
        :func:`remove_modules` (PyTorch: the arm's layers are dotted submodule names, replaced
        by ``nn.Identity``).

    Example:

        .. testcode::

            import keras
            from optuna_spark.ablation import LOCOSampler
            from optuna_spark.ablation import ablate_model


            def build():
                inputs = keras.Input((4,))
                x = keras.layers.Dense(8, name="hidden_1")(inputs)
                x = keras.layers.Dense(8, name="head_1")(x)
                x = keras.layers.Dense(8, name="head_2")(x)
                return keras.Model(inputs, keras.layers.Dense(1, name="price")(x))


            sampler = LOCOSampler(layer_groups={"head": "head_"})
            model = ablate_model(sampler.fixed_trial("group:head"), build)
            assert [layer.name for layer in model.layers][1:] == ["hidden_1", "price"]
    """
    arm = as_arm(trial_or_arm)
    model = _built(model)
    if is_torch_module(model):
        return _without_torch_modules(arm, model, copy_weights, example_input)
    return _without_keras_layers(arm, model, copy_weights, example_input)


def _built(model: Any) -> Any:
    """``model``, or the model that ``model`` builds when it is a function."""
    if is_torch_module(model) or _is_keras_model(model):
        return model
    if not callable(model):
        raise TypeError(
            "Expected a torch.nn.Module, a keras.Model or a function that builds one, but "
            f"got {type(model).__name__}."
        )
    build: Callable[[], Any] = model
    return build()


def _without_torch_modules(arm: Arm, model: Any, copy_weights: bool, example_input: Any) -> Any:
    if not copy_weights:
        raise ValueError(
            "copy_weights=False is for Keras models; to initialize a PyTorch model anew, "
            "pass a function that builds it."
        )
    if not arm.layers:
        return model
    return remove_modules(model, arm.layers, example_input=example_input)


def _without_keras_layers(arm: Arm, model: Any, copy_weights: bool, example_input: Any) -> Any:
    if example_input is not None:
        raise ValueError("example_input is for PyTorch models; a Keras model knows its shapes.")
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"The model-building function returned {type(model).__name__}, not a "
            "torch.nn.Module or a keras.Model."
        )
    if not arm.layers:
        return model
    return remove_layers(model, arm.layers, copy_weights=copy_weights)


def _is_keras_model(model: Any) -> bool:
    """Whether ``model`` is a ``keras.Model`` (without importing Keras)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)


def _is_functional(model: Any) -> bool:
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - a future Keras that moved it
        return hasattr(model, "_nodes_by_depth")
    return isinstance(model, Functional)


class _Rewire:
    """The ``call_function`` of ``clone_model``: removed layers hand on their input.

    A kept layer must receive what it received in the original model; when it would not, the
    error blames the removed layer whose input it would receive instead of its output.
    """

    def __init__(self, keras: Any, model: Any, remove: set[str]) -> None:
        self._keras = keras
        self._model = model
        self.removed = remove
        self._blame: dict[int, tuple[str, tuple[Any, ...]]] = {}  # id(tensor) -> (layer, shape)

    def __call__(self, layer: Any, *args: Any, **kwargs: Any) -> Any:
        keras = self._keras
        inputs = [
            t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)
        ]
        nodes = _node_shapes(self._model.get_layer(layer.name))
        if layer.name in self.removed:
            single = [outs for ins, outs in nodes if len(ins) == 1 and len(outs) == 1]
            if len(inputs) != 1 or not single:
                n_out = len(nodes[0][1]) if nodes else 0
                raise ValueError(
                    f"Cannot remove layer {layer.name!r}: it takes {len(inputs)} input tensor(s) "
                    f"and gives {n_out} output tensor(s), so there is no single input to hand "
                    "its consumers."
                )
            self._blame[id(inputs[0])] = (layer.name, single[0][0])
            return inputs[0]
        self.check(f"layer {layer.name!r}", inputs, [ins for ins, _ in nodes])
        return layer(*args, **kwargs)

    def check(
        self, consumer: str, inputs: Sequence[Any], expected: Sequence[Sequence[tuple[Any, ...]]]
    ) -> None:
        """Raise unless ``inputs`` have the shapes of one of the ``expected`` calls."""
        shapes = [tuple(t.shape) for t in inputs]
        if not expected or any(sorted(map(str, shapes)) == sorted(map(str, e)) for e in expected):
            return
        for t in inputs:
            if id(t) in self._blame:
                name, wanted = self._blame[id(t)]
                if tuple(t.shape) != wanted:
                    raise ValueError(
                        f"Cannot remove layer {name!r}: its input has shape {tuple(t.shape)} but "
                        f"its output has shape {wanted}, so {consumer} would receive "
                        f"{tuple(t.shape)} instead of {wanted}. Only a layer (or a group of "
                        "layers) whose output has its input's shape can be left out."
                    )
        raise ValueError(
            f"Cannot remove {sorted(self.removed)}: {consumer} would receive shapes {shapes} "
            f"instead of {list(expected[0])}."
        )


def _node_shapes(layer: Any) -> list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Input and output shapes of each call of ``layer`` in its graphs."""
    return [
        (
            [tuple(t.shape) for t in node.input_tensors],
            [tuple(t.shape) for t in node.output_tensors],
        )
        for node in layer._inbound_nodes
    ]


def _without_in_sequential(keras: Any, model: Any, rewire: _Rewire) -> Any:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            f"Sequential model {model.name!r} has no input shape yet: start it with "
            "keras.Input(shape) (or build it) so that its layers' shapes can be checked."
        )
    spec = inputs[0]
    x = keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype)
    kept = []
    for layer in model.layers:
        clone = layer.__class__.from_config(layer.get_config())
        x = rewire(clone, x)
        if layer.name not in rewire.removed:
            kept.append(clone)
    rewire.check("the model's output", [x], [[tuple(model.outputs[0].shape)]])
    return keras.Sequential(
        [keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype), *kept],
        name=model.name,
        trainable=model.trainable,
    )
