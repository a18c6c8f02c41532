"""Keras 3 model surgery: Sequential and functional models without some layers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablate_model
from optuna_spark.ablation import get_arm
from optuna_spark.ablation import remove_layers

pytestmark = [pytest.mark.tensorflow, pytest.mark.timeout(120)]

SAMPLER = LOCOSampler(
    layers=["dense_2", "norm"],
    layer_groups={"head": "head_", "block": ["block_down", "block_up"]},
    components=["augment"],
    seed=0,
)


def _sequential(keras: Any) -> Any:
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="dense_1"),
            keras.layers.Dense(8, activation="relu", name="dense_2"),
            keras.layers.Dense(8, activation="relu", name="head_1"),
            keras.layers.Dense(8, activation="relu", name="head_2"),
            keras.layers.Dense(1, name="price"),
        ],
        name="houses",
    )


def _functional(keras: Any) -> Any:
    """Two inputs, a bottleneck residual block, a normalization, a head."""
    area = keras.Input((3,), name="area")
    rooms = keras.Input((1,), name="rooms")
    x = keras.layers.Concatenate(name="concat")([area, rooms])
    x = keras.layers.Dense(8, activation="relu", name="dense_1")(x)
    b = keras.layers.Dense(2, activation="relu", name="block_down")(x)
    b = keras.layers.Dense(8, name="block_up")(b)
    x = keras.layers.Add(name="add")([x, b])
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Dense(8, activation="relu", name="dense_2")(x)
    return keras.Model([area, rooms], keras.layers.Dense(1, name="price")(x), name="houses")


def _names(model: Any) -> list[str]:
    return [layer.name for layer in model.layers if not layer.name.startswith(("area", "rooms"))]


def _fit(model: Any, n_inputs: int | None = None) -> float:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(32, 1)).astype("float32")
    if n_inputs is None:
        x: Any = rng.normal(size=(32, 4)).astype("float32")
    else:
        x = [rng.normal(size=(32, 3)).astype("float32"), rng.normal(size=(32, 1)).astype("f4")]
    if not model.compiled:
        model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return float(history.history["loss"][-1])


# ---------------------------------------------------------------------------------------------
# Sequential


def test_sequential_without_a_layer_trains(keras: Any) -> None:
    model = _sequential(keras)
    model.compile(optimizer="sgd", loss="mae")
    out = ablate_model(SAMPLER.fixed_trial("layer:dense_2"), model)
    assert isinstance(out, keras.Sequential)
    assert _names(out) == ["dense_1", "head_1", "head_2", "price"]
    assert _names(model) == ["dense_1", "dense_2", "head_1", "head_2", "price"]  # untouched
    # Compiled like the original; kept layers keep the original's initial weights.
    assert out.compiled and out.loss == "mae"
    for name in ["dense_1", "head_1", "price"]:
        for new, old in zip(
            out.get_layer(name).weights, model.get_layer(name).weights, strict=True
        ):
            np.testing.assert_array_equal(new.numpy(), old.numpy())
    assert out.get_layer("head_1") is not model.get_layer("head_1")
    assert np.isfinite(_fit(out))
    assert out.predict(np.zeros((2, 4), "float32"), verbose=0).shape == (2, 1)


def test_sequential_layer_group_by_prefix(keras: Any) -> None:
    out = ablate_model(SAMPLER.fixed_trial("group:head"), lambda: _sequential(keras))
    assert _names(out) == ["dense_1", "dense_2", "price"]
    assert np.isfinite(_fit(out))


def test_fresh_weights_on_request(keras: Any) -> None:
    model = _sequential(keras)
    out = remove_layers(model, ["dense_2"], copy_weights=False)
    assert not np.array_equal(
        out.get_layer("head_1").kernel.numpy(), model.get_layer("head_1").kernel.numpy()
    )


def test_arms_without_layers_return_the_model(keras: Any) -> None:
    model = _sequential(keras)
    assert ablate_model(SAMPLER.fixed_trial("base"), model) is model
    assert ablate_model(get_arm(SAMPLER.fixed_trial("component:augment")), model) is model
    built = ablate_model(SAMPLER.fixed_trial("base"), lambda: _sequential(keras))
    assert _names(built) == _names(model)


def test_removing_a_layer_that_changes_the_shape_is_an_error(keras: Any) -> None:
    model = _sequential(keras)
    with pytest.raises(ValueError) as info:
        remove_layers(model, "dense_1")
    message = str(info.value)
    assert "Cannot remove layer 'dense_1'" in message
    assert "(None, 4)" in message and "(None, 8)" in message
    with pytest.raises(ValueError, match=r"'price'.*\(None, 8\).*\(None, 1\)"):
        remove_layers(model, "price")


def test_unknown_layer_names_are_errors(keras: Any) -> None:
    model = _sequential(keras)
    with pytest.raises(ValueError, match=r"no layer named 'dense_9'; its layers are \['dense_1'"):
        remove_layers(model, "dense_9")
    with pytest.raises(ValueError, match="no layer matching 'tail_\\*'"):
        ablate_model(
            get_arm(LOCOSampler(layer_groups={"t": "tail_"}).fixed_trial("group:t")), model
        )


def test_sequential_without_an_input_shape_is_an_error(keras: Any) -> None:
    model = keras.Sequential([keras.layers.Dense(4, name="a"), keras.layers.Dense(4, name="b")])
    with pytest.raises(ValueError, match="has no input shape yet"):
        remove_layers(model, "a")


# ---------------------------------------------------------------------------------------------
# Functional


def test_functional_without_a_layer_trains(keras: Any) -> None:
    model = _functional(keras)
    out = ablate_model(SAMPLER.fixed_trial("layer:norm"), model)
    assert "norm" not in _names(out)
    assert out.get_layer("dense_2").input.shape == (None, 8)
    # The consumer of the removed layer is wired to the removed layer's input: "add".
    assert out.get_layer("dense_2")._inbound_nodes[0].parent_nodes[0].operation.name == "add"
    assert np.isfinite(_fit(out, n_inputs=2))


def test_functional_group_that_keeps_the_shape_as_a_whole(keras: Any) -> None:
    # block_down alone maps 8 -> 2; the block as a whole maps 8 -> 8.
    out = ablate_model(SAMPLER.fixed_trial("group:block"), lambda: _functional(keras))
    assert "block_down" not in _names(out) and "block_up" not in _names(out)
    assert np.isfinite(_fit(out, n_inputs=2))


def test_functional_shape_and_arity_errors(keras: Any) -> None:
    model = _functional(keras)
    with pytest.raises(ValueError) as info:
        remove_layers(model, "block_down")
    assert "Cannot remove layer 'block_down'" in str(info.value)
    assert "(None, 8)" in str(info.value) and "(None, 2)" in str(info.value)
    with pytest.raises(ValueError, match="Cannot remove layer 'add': it takes 2 input tensor"):
        remove_layers(model, "add")
    with pytest.raises(ValueError, match="Cannot remove layer 'area': it is an input"):
        remove_layers(model, "area")


def test_subclassed_models_are_refused(keras: Any) -> None:
    class Net(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(1, name="dense")

        def call(self, x: Any) -> Any:
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(TypeError, match="subclassed"):
        remove_layers(net, "dense")


def test_not_a_model(keras: Any) -> None:
    with pytest.raises(TypeError, match=r"keras\.Model or a function"):
        ablate_model(SAMPLER.fixed_trial("layer:norm"), "model")
    with pytest.raises(TypeError, match="returned str"):
        ablate_model(SAMPLER.fixed_trial("layer:norm"), lambda: "model")
