"""Fixtures of the ablation tests: quiet TensorFlow, seeded Keras."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def keras() -> Any:
    """Keras 3 with a fixed seed (tests using it are marked ``tensorflow``)."""
    import keras

    keras.utils.set_random_seed(0)
    return keras
