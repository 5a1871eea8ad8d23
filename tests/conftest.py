"""Shared test setup: headless rendering, quiet TensorFlow, offline wandb."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

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


@pytest.fixture
def write_tiny_checkpoint() -> Callable[..., Path]:
    """``write(root, with_head=True, seed=0) -> checkpoint dir`` holding ``WorldModel.random("tiny", seed)``'s
    weights (EMA = student), its action stats and, optionally, its progress head."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from worldmodel.training.checkpoint import CheckpointContents, write_checkpoint
    from worldmodel.world_model import PROGRESS_FILE, WorldModel

    def write(root: Path, with_head: bool = True, seed: int = 0) -> Path:
        from dataclasses import asdict

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
