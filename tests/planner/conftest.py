"""A randomly initialised ``tiny`` world model (no checkpoint needed); tiny checkpoints: tests/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest

from worldmodel.world_model import WorldModel


@pytest.fixture(autouse=True)
def _single_thread(one_thread: None) -> None:
    """Every planner test runs on one torch thread (``one_thread`` in tests/conftest.py)."""


@pytest.fixture
def tiny_world_model() -> WorldModel:
    return WorldModel.random("tiny", seed=0)


@pytest.fixture
def frames() -> np.ndarray:
    """(2, 48, 60, 3) uint8 context at an env resolution other than the model's 32 x 40."""
    return np.random.default_rng(0).integers(0, 256, (2, 48, 60, 3), dtype=np.uint8)


@pytest.fixture
def language() -> np.ndarray:
    v = np.random.default_rng(1).normal(size=512).astype(np.float32)
    return v / np.linalg.norm(v)
