"""Shared test setup: headless rendering, quiet TensorFlow, offline wandb."""

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test on one torch thread: models this small lose more to OpenMP contention than they gain
    (10x on a busy 2-core VM)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
