"""A randomly initialised ``tiny`` world model (no checkpoint needed) and tiny checkpoints in the trainer's format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from safetensors.torch import save_file

from worldmodel.world_model import PROGRESS_FILE, WorldModel


@pytest.fixture(autouse=True)
def _single_thread(one_thread: None) -> None:
    """Every planner test runs on one torch thread (``one_thread`` in tests/conftest.py)."""


@pytest.fixture
def tiny_world_model() -> WorldModel:
    return WorldModel.random("tiny", seed=0)


@pytest.fixture
def write_tiny_checkpoint() -> Callable[..., Path]:
    """``write(root, with_head=True, seed=0) -> checkpoint dir`` holding ``WorldModel.random("tiny", seed)``'s
    weights (EMA = student), its action stats and, optionally, its progress head."""
    from worldmodel.training.checkpoint import CheckpointContents, write_checkpoint

    def write(root: Path, with_head: bool = True, seed: int = 0) -> Path:
        wm = WorldModel.random("tiny", seed=seed)
        state = {k: v.clone() for k, v in wm.model.state_dict().items()}
        meta = {"mode": "finetune", "model": {**asdict(wm.cfg), "checkpointing": False},
                "action_stats": wm.stats.to_dict()}
        if with_head:
            meta["progress_head"] = wm.progress_head.config.to_dict()
        cfg_yaml = OmegaConf.to_yaml(OmegaConf.create({"model": asdict(wm.cfg)}))
        path = write_checkpoint(root, CheckpointContents(7, state, state, {}, {}, {}, meta, cfg_yaml), keep_last=1)
        if with_head:
            save_file(wm.progress_head.state_dict(), str(path / PROGRESS_FILE))
        return path

    return write


@pytest.fixture
def frames() -> np.ndarray:
    """(2, 48, 60, 3) uint8 context at an env resolution other than the model's 32 x 40."""
    return np.random.default_rng(0).integers(0, 256, (2, 48, 60, 3), dtype=np.uint8)


@pytest.fixture
def language() -> np.ndarray:
    v = np.random.default_rng(1).normal(size=512).astype(np.float32)
    return v / np.linalg.norm(v)
