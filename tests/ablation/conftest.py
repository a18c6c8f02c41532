"""Fixtures of the ablation tests: quiet TensorFlow, seeded Keras."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A run that deselects the ``torch`` tests (``-m "not torch"``, where PyTorch is not
    installed) does not import their module; every other run does, and fails without it."""
    if collection_path.name == "test_torch.py" and "not torch" in (config.option.markexpr or ""):
        return True
    return None


@pytest.fixture
def keras() -> Any:
    """Keras 3 with a fixed seed (tests using it are marked ``tensorflow``)."""
    import keras

    keras.utils.set_random_seed(0)
    return keras
