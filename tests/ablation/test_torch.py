"""PyTorch: models with submodules replaced by ``nn.Identity``, datasets and tensors without a
feature."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from optuna_spark.ablation import LOCOSampler
from optuna_spark.ablation import ablate_data
from optuna_spark.ablation import ablate_model
from optuna_spark.ablation import drop_features
from optuna_spark.ablation import get_arm
from optuna_spark.ablation import remove_modules

pytestmark = [pytest.mark.torch, pytest.mark.timeout(120)]

X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
SAMPLER = LOCOSampler(
    layers=["encoder.block2", "encoder.block1.down"],
    layer_groups={
        "blocks": "encoder.block",
        "bottleneck": ["encoder.block1.down", "encoder.block1.up"],
    },
    components=["augment"],
    seed=0,
)


def _sequential() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8),
        nn.ReLU(),
        nn.Linear(8, 8),
        nn.ReLU(),
        nn.Linear(8, 1),
    )


class Block(nn.Module):
    """A residual bottleneck block: ``x + up(relu(down(x)))``."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, hidden)
        self.up = nn.Linear(hidden, width)

    def forward(self, x: Any) -> Any:
        return x + self.up(torch.relu(self.down(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.norm = nn.BatchNorm1d(8)
        self.encoder = nn.Sequential()
        self.encoder.add_module("block1", Block(8, 2))
        self.encoder.add_module("block2", Block(8, 2))
        self.head = nn.Linear(8, 1)

    def forward(self, x: Any) -> Any:
        return self.head(self.encoder(self.norm(self.stem(x))))


def _net() -> Net:
    torch.manual_seed(0)
    return Net()


def _state(model: Any) -> dict[str, Any]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------
# remove_modules


@pytest.mark.parametrize("example_input", [X, None], ids=["checked", "declared"])
def test_sequential_without_a_module(example_input: Any) -> None:
    model = _sequential()
    state = _state(model)
    out = remove_modules(model, ["2"], example_input=example_input)
    assert isinstance(out[2], nn.Identity)
    assert out(X).shape == (3, 1)
    # The original is untouched, and the copy shares no parameter with it.
    assert isinstance(model[2], nn.Linear)
    assert _same_state(_state(model), state)
    assert not {id(p) for p in out.parameters()} & {id(p) for p in model.parameters()}
    # The kept modules keep their weights.
    assert torch.equal(out[0].weight, model[0].weight)
    assert torch.equal(out[4].weight, model[4].weight)


def test_nested_residual_block_by_dotted_name() -> None:
    model = _net()
    model.train()
    state = _state(model)
    out = remove_modules(model, "encoder.block2", example_input=X)
    assert isinstance(out.encoder.block2, nn.Identity)
    assert isinstance(out.encoder.block1, Block)
    assert out(X).shape == (3, 1)
    # The check ran in eval mode: BatchNorm's running statistics did not move, and the training
    # flags of the model and its copy are as before.
    assert _same_state(_state(model), state)
    assert model.training and model.norm.training
    assert out.training and out.norm.training


def test_without_example_input_an_unchecked_module_is_replaced_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="optuna_spark.ablation._torch"):
        out = remove_modules(_net(), ["encoder.block2"])
    assert isinstance(out.encoder.block2, nn.Identity)
    assert "encoder.block2" in caplog.text and "pass example_input=" in caplog.text


def test_declared_shape_keeping_modules_need_no_example_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="optuna_spark.ablation._torch"):
        out = remove_modules(_net(), ["norm"])
        remove_modules(_sequential(), ["1", "2", "3"])
    assert isinstance(out.norm, nn.Identity)
    assert caplog.text == ""


def test_prefix_pattern_removes_every_matching_module() -> None:
    model = _net()
    out = remove_modules(model, ["encoder.block*"], example_input=X)
    assert isinstance(out.encoder.block1, nn.Identity)
    assert isinstance(out.encoder.block2, nn.Identity)
    assert isinstance(out.stem, nn.Linear)
    assert out(X).shape == (3, 1)


def test_group_that_keeps_the_shape_as_a_whole() -> None:
    model = _net()
    out = remove_modules(model, ["encoder.block1.*"], example_input=X)
    assert isinstance(out.get_submodule("encoder.block1.down"), nn.Identity)
    assert isinstance(out.get_submodule("encoder.block1.up"), nn.Identity)
    assert out(X).shape == (3, 1)
    # Consecutive modules of an nn.Sequential are checked together without an example input.
    bottleneck = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2), nn.ReLU(), nn.Linear(2, 8))
    assert remove_modules(bottleneck, ["1", "2", "3"])(X).shape == (3, 8)


def test_a_module_that_changes_the_shape_is_refused_with_both_shapes() -> None:
    model = _net()
    with pytest.raises(
        ValueError,
        match=r"Cannot remove module 'encoder.block1.down': its input has shape \(3, 8\) but "
        r"its output has shape \(3, 2\), so module 'encoder.block1.up' would receive \(3, 8\) "
        r"instead of \(3, 2\)",
    ):
        remove_modules(model, ["encoder.block1.down"], example_input=X)
    with pytest.raises(ValueError, match=r"the model would give \(3, 8\) instead of \(3, 1\)"):
        remove_modules(model, ["head"], example_input=X)
    with pytest.raises(
        ValueError,
        match=r"'encoder.block1.down': its input has 8 features but its output has 2.*"
        r"pass example_input=",
    ):
        remove_modules(model, ["encoder.block1.down"])
    with pytest.raises(ValueError, match="its input has 3 channels but its output has 16"):
        remove_modules(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()), ["0"])
    assert isinstance(model.get_submodule("encoder.block1.down"), nn.Linear)  # untouched


def test_a_module_that_takes_or_gives_several_tensors_is_refused() -> None:
    class Pair(nn.Module):
        def forward(self, x: Any) -> Any:
            return x, x

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()
            self.mix = nn.Bilinear(4, 4, 4)

        def forward(self, x: Any) -> Any:
            return self.mix(*self.pair(x))

    with pytest.raises(ValueError, match=r"'pair': it gives .*not one tensor"):
        remove_modules(Model(), ["pair"], example_input=X)
    with pytest.raises(ValueError, match=r"'mix': it receives .*not one tensor"):
        remove_modules(Model(), ["mix"], example_input=X)


def test_unknown_names_and_the_model_itself_are_errors() -> None:
    model = _net()
    with pytest.raises(ValueError, match=r"no submodule named 'encoder.blok2'; did you mean \["):
        remove_modules(model, ["encoder.blok2"])
    with pytest.raises(ValueError, match=r"no submodule matching 'decoder\*'.*'encoder.block1'"):
        remove_modules(model, ["decoder*"])
    with pytest.raises(ValueError, match="it is the model itself"):
        remove_modules(model, [""])
    with pytest.raises(TypeError, match=r"Expected a torch.nn.Module"):
        remove_modules(object(), ["x"])  # type: ignore[type-var]


def test_a_model_that_fails_on_the_example_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="Sequential fails on example_input"):
        remove_modules(_sequential(), ["2"], example_input=torch.zeros(3, 5))


def test_a_module_that_does_not_run_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    model = _net()
    model.spare = nn.Linear(8, 8)  # registered, never called
    with caplog.at_level(logging.WARNING, logger="optuna_spark.ablation._torch"):
        out = remove_modules(model, ["spare"], example_input=X)
    assert isinstance(out.spare, nn.Identity)
    assert "'spare' does not run on example_input" in caplog.text


# ---------------------------------------------------------------------------------------------
# ablate_model


def test_ablate_model_removes_the_arms_modules() -> None:
    model = _net()
    out = ablate_model(SAMPLER.fixed_trial("layer:encoder.block2"), model, example_input=X)
    assert isinstance(out.encoder.block2, nn.Identity)
    assert isinstance(model.encoder.block2, Block)
    group = ablate_model(get_arm(SAMPLER.fixed_trial("group:blocks")), _net)
    assert isinstance(group.encoder.block1, nn.Identity)
    assert isinstance(group.encoder.block2, nn.Identity)
    bottleneck = ablate_model(SAMPLER.fixed_trial("group:bottleneck"), _net, example_input=X)
    assert isinstance(bottleneck.get_submodule("encoder.block1.down"), nn.Identity)
    assert bottleneck(X).shape == (3, 1)


def test_ablate_model_arms_without_layers_return_the_model() -> None:
    model = _net()
    assert ablate_model(SAMPLER.fixed_trial("base"), model) is model
    assert ablate_model(SAMPLER.fixed_trial("component:augment"), model) is model
    assert isinstance(ablate_model(SAMPLER.fixed_trial("base"), _net), Net)


def test_ablate_model_errors() -> None:
    with pytest.raises(ValueError, match=r"encoder.block1.down"):
        ablate_model(SAMPLER.fixed_trial("layer:encoder.block1.down"), _net(), example_input=X)
    with pytest.raises(ValueError, match="copy_weights=False is for Keras models"):
        ablate_model(SAMPLER.fixed_trial("layer:encoder.block2"), _net(), copy_weights=False)
    with pytest.raises(
        TypeError, match=r"a torch\.nn\.Module, a keras\.Model or a function that builds one"
    ):
        ablate_model(SAMPLER.fixed_trial("base"), 3)
    with pytest.raises(
        TypeError, match=r"returned int, not a torch\.nn\.Module or a keras\.Model"
    ):
        ablate_model(SAMPLER.fixed_trial("base"), lambda: 3)


@pytest.mark.slow
def test_ablate_model_with_a_lightning_module() -> None:
    import lightning

    class Regressor(lightning.LightningModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

        def forward(self, x: Any) -> Any:
            return self.net(x)

    out = ablate_model(SAMPLER.fixed_trial("group:blocks"), Regressor().net, example_input=X)
    assert isinstance(out.encoder.block1, nn.Identity)
    module = Regressor()
    arm = get_arm(
        LOCOSampler(layers=["net.encoder.block2"]).fixed_trial("layer:net.encoder.block2")
    )
    ablated = ablate_model(arm, module, example_input=X)
    assert isinstance(ablated, Regressor)
    assert isinstance(ablated.net.encoder.block2, nn.Identity)
    assert ablated(X).shape == (3, 1)


# ---------------------------------------------------------------------------------------------
# Datasets


class Houses(torch.utils.data.Dataset[Any]):
    """Items ``{"area", "rooms", "noise"}``, or ``(features, price)`` or with a weight too."""

    def __init__(self, shape: str = "dict") -> None:
        self.shape = shape

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> Any:
        features = {
            "area": torch.tensor([50.0 + i]),
            "rooms": torch.tensor([float(i % 3)]),
            "noise": torch.tensor([0.1 * i]),
        }
        price = torch.tensor([float(i)])
        if self.shape == "dict":
            return {**features, "price": price}
        if self.shape == "pair":
            return features, price
        return features, price, torch.tensor(1.0)


class Stream(torch.utils.data.IterableDataset[Any]):
    def __iter__(self) -> Iterator[Any]:
        return iter(Houses("pair")[i] for i in range(6))


def test_dataset_of_feature_dicts() -> None:
    dataset = Houses("dict")
    out = drop_features(dataset, "rooms", label="price")
    assert isinstance(out, torch.utils.data.Dataset)
    assert len(out) == 6
    assert list(out[2]) == ["area", "noise", "price"]
    assert torch.equal(out[2]["area"], dataset[2]["area"])
    batch = next(iter(torch.utils.data.DataLoader(out, batch_size=4)))
    assert set(batch) == {"area", "noise", "price"} and batch["area"].shape == (4, 1)


@pytest.mark.parametrize("shape", ["pair", "weighted"])
def test_dataset_of_features_and_labels(shape: str) -> None:
    out = drop_features(Houses(shape), ["rooms", "noise"])
    features, *rest = out[1]
    assert list(features) == ["area"]
    assert torch.equal(rest[0], torch.tensor([1.0]))
    assert len(rest) == (1 if shape == "pair" else 2)


def test_dataset_without_features_pickles() -> None:
    out = drop_features(Houses("pair"), "rooms")
    back = pickle.loads(pickle.dumps(out))
    assert len(back) == 6
    assert isinstance(back, torch.utils.data.Dataset)
    assert list(back[0][0]) == ["area", "noise"]
    stream = pickle.loads(pickle.dumps(drop_features(Stream(), "rooms")))
    assert isinstance(stream, torch.utils.data.IterableDataset)
    assert [list(features) for features, _ in stream] == [["area", "noise"]] * 6


def test_dataset_errors() -> None:
    with pytest.raises(ValueError, match="Cannot leave out 'price': it is the label"):
        drop_features(Houses("dict"), "price", label="price")
    with pytest.raises(ValueError, match="'garden': it is not one of the dataset's features"):
        drop_features(Houses("pair"), "garden")
    tensors = torch.utils.data.TensorDataset(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="must yield a dict of features"):
        drop_features(tensors, "area")
    stream = drop_features(Stream(), "garden")  # an iterable dataset is checked as it runs
    with pytest.raises(ValueError, match="'garden': it is not one of the dataset's features"):
        next(iter(stream))


def test_ablate_data_with_a_dataset() -> None:
    dataset = Houses("pair")
    sampler = LOCOSampler(features=["area", "rooms", "noise"])
    assert ablate_data(sampler.fixed_trial("base"), dataset) is dataset
    out = ablate_data(sampler.fixed_trial("feature:noise"), dataset)
    assert list(out[0][0]) == ["area", "rooms"]


# ---------------------------------------------------------------------------------------------
# Tensors


def test_tensor_with_named_features() -> None:
    x = torch.arange(12.0).reshape(3, 4)
    out = drop_features(x, ["b", "d"], feature_names=["a", "b", "c", "d"])
    assert out.tolist() == [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]
    assert x.shape == (3, 4)  # untouched
    # Features along another axis: (batch, features, time).
    series = torch.arange(24.0).reshape(2, 3, 4)
    out = drop_features(series, "price", feature_names=["temp", "price", "wind"], feature_axis=1)
    assert torch.equal(out, series[:, [0, 2], :])
    assert drop_features(x, [], feature_names=["a", "b", "c", "d"]) is x


def test_tensor_errors() -> None:
    x = torch.zeros(3, 4)
    names = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="needs feature_names="):
        drop_features(x, "a")
    with pytest.raises(ValueError, match="'e': it is not one of the tensor's features"):
        drop_features(x, "e", feature_names=names)
    with pytest.raises(ValueError, match="Cannot leave out 'd': it is the label"):
        drop_features(x, "d", feature_names=names, label="d")
    with pytest.raises(ValueError, match=r"has 4 features along axis -1 .* feature_names has 3"):
        drop_features(x, "a", feature_names=names[:3])
    with pytest.raises(ValueError, match="feature_axis 2 is not an axis"):
        drop_features(x, "a", feature_names=names, feature_axis=2)
    with pytest.raises(ValueError, match=r"must be distinct, but \['a'\]"):
        drop_features(x, "a", feature_names=["a", "a", "c", "d"])
    with pytest.raises(ValueError, match="feature_names and feature_axis name the features of"):
        drop_features(Houses(), "area", feature_names=names)


# ---------------------------------------------------------------------------------------------
# Imports


def test_the_package_does_not_import_torch() -> None:
    code = "import sys, optuna_spark.ablation; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'optuna-spark\[torch\]'"):
        remove_modules(object(), ["x"])  # type: ignore[type-var]


def test_ablate_data_on_a_tensor_with_named_features() -> None:
    sampler = LOCOSampler(features=["area", "rooms", "garden"], pairs=True, seed=0)
    x = torch.tensor([[50.0, 2.0, 1.0], [80.0, 3.0, 0.0]])
    names = ["area", "rooms", "garden"]
    base = ablate_data(sampler.fixed_trial("base"), x, feature_names=names)
    assert torch.equal(base, x)
    pair = ablate_data(sampler.fixed_trial("pair:area+garden"), x, feature_names=names)
    assert torch.equal(pair, x[:, 1:2])
