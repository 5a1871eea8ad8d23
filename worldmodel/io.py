"""What training writes and inference reads: checkpoint files, the pixel range and the action bounds.

Both sides import this module; inference (``worldmodel.world_model``, ``worldmodel.planner``,
``worldmodel.evaluation``, ``policies``) never imports ``worldmodel.training`` (docs/architecture.md, "Layers").

Layout of one checkpoint (``<run_dir>/checkpoints/step_00001000/``)::

    model.safetensors      student weights (fp32, unsharded)
    ema.safetensors        EMA weights: the Self-Flow teacher and the weights to evaluate / plan with
    projector.safetensors  Self-Flow projector (student side)
    progress.safetensors   progress head (fine-tuning with ``train.progress_weight > 0`` only; its shape is
                           ``meta["progress_head"]``)
    optimizer.pt           AdamW state (unsharded)
    trainer_state.pt       step, LR scheduler, EMA update count, and per rank: RNG states and the data position
    config.yaml            the resolved run config
    meta.json              step, mode, model config, action statistics, world size, progress head config
                           (written last)

``worldmodel.training.checkpoint`` writes them (atomically); this module finds and loads them.

Pixels: the model sees frames as float ``(..., 3, H, W)`` in [-1, 1]; cameras and videos are uint8
``(..., H, W, 3)``. :func:`pixels_to_model` and :func:`model_to_pixels` are the only conversions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

if TYPE_CHECKING:  # imported where used: the data pipeline imports this module for the pixel conversion
    from worldmodel.data.stats import ActionStats
    from worldmodel.models import ModelConfig, VideoActionDiT
    from worldmodel.models.progress import ProgressHead

# The env's action bounds in RT-1 units (envs.tabletop.ACTION_LOW/HIGH; envs/ does not import worldmodel, so
# tests/test_layers.py checks the two agree): world_vector (m), rotation_delta (rad), gripper (+1 close, -1 open).
ACTION_LOW = np.array([-0.05] * 3 + [-0.25] * 3 + [-1.0], dtype=np.float32)
ACTION_HIGH = -ACTION_LOW

CHECKPOINTS = "checkpoints"
TMP_PREFIX = ".tmp-"
META = "meta.json"
PROGRESS_FILE = "progress.safetensors"  # optional: only fine-tuning checkpoints with a progress head have it
FORMAT_VERSION = 1
FILES = ("model.safetensors", "ema.safetensors", "projector.safetensors", "optimizer.pt", "trainer_state.pt",
         "config.yaml", META)
_NAME = re.compile(r"^step_(\d{8,})$")


# ------------------------------------------------------------------------------------------------- pixels
def pixels_to_model(frames: Any) -> Any:
    """uint8 ``(..., H, W, 3)`` → float32 ``(..., 3, H, W)`` in [-1, 1] (numpy in, numpy out; else torch)."""
    if isinstance(frames, np.ndarray):
        x = np.moveaxis(frames, -1, -3).astype(np.float32)
        return x / np.float32(127.5) - np.float32(1.0)
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def model_to_pixels(frames: torch.Tensor) -> np.ndarray:
    """float ``(..., 3, H, W)`` in [-1, 1] (clipped) → uint8 ``(..., H, W, 3)`` numpy."""
    x = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


# ----------------------------------------------------------------------------------------------- checkpoints
def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint at ``step``."""
    return f"step_{step:08d}"


def is_complete(path: Path) -> bool:
    """True for a renamed-into-place checkpoint directory holding every file and a readable ``meta.json``."""
    match = _NAME.match(path.name)
    if not path.is_dir() or match is None or not all((path / f).is_file() for f in FILES):
        return False
    try:
        return int(json.loads((path / META).read_text())["step"]) == int(match.group(1))
    except (ValueError, KeyError, json.JSONDecodeError):
        return False


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temp and incomplete directories are ignored)."""
    root = Path(run_dir).expanduser() / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and is_complete(p)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory (→ its latest complete checkpoint).

    Raises:
        FileNotFoundError: naming the path when it is neither.
    """
    p = Path(path).expanduser()
    if is_complete(p):
        return p
    if p.is_dir():
        latest = latest_checkpoint(p)
        if latest is not None:
            return latest
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    raise FileNotFoundError(f"{p}: not a complete checkpoint (step_N/ with {', '.join(FILES)}) nor a run "
                            f"directory holding {CHECKPOINTS}/step_N/")


def read_meta(path: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint (or of a run directory's latest checkpoint)."""
    return json.loads((resolve_checkpoint(path) / META).read_text())


@dataclass
class LoadedCheckpoint:
    """A trained model ready for inference.

    Attributes:
        model: the network in eval mode (EMA weights unless asked otherwise).
        config: the resolved run config (``config.model``, ``config.data``, ...).
        action_stats: normalisation of actions (None for a video-only pretraining checkpoint).
        step: optimiser steps the weights were trained for.
        path: the checkpoint directory.
        meta: the checkpoint's ``meta.json``.
        progress_head: the trained progress head in eval mode, or None when the checkpoint has none (pretraining,
            ``train.progress_weight=0``).
    """

    model: VideoActionDiT
    config: DictConfig
    action_stats: ActionStats | None
    step: int
    path: Path
    meta: dict[str, Any]
    progress_head: ProgressHead | None = None

    @property
    def model_config(self) -> ModelConfig:
        return self.model.cfg


def load_checkpoint(path: str | Path, ema: bool = True, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load a model, its config and action statistics from a checkpoint; the dataset is not needed.

    Args:
        path: a checkpoint directory (``.../checkpoints/step_N``) or a run directory (its latest checkpoint).
        ema: load the EMA weights (what to evaluate and plan with) instead of the raw student weights.
        device: where to put the model.

    Returns:
        :class:`LoadedCheckpoint` with the model in eval mode.

    Raises:
        FileNotFoundError: the path is not a complete checkpoint nor a run directory with one.
    """
    from worldmodel.data.stats import ActionStats
    from worldmodel.models import ModelConfig, build_model

    ckpt = resolve_checkpoint(path)
    meta = json.loads((ckpt / META).read_text())
    model_cfg = ModelConfig.from_dict({**meta["model"], "checkpointing": False})
    with torch.device("meta"):
        model = build_model(model_cfg)
    state = load_file(str(ckpt / ("ema.safetensors" if ema else "model.safetensors")), device=str(device))
    model.load_state_dict(state, strict=True, assign=True)
    stats = ActionStats.from_dict(meta["action_stats"]) if meta.get("action_stats") else None
    config = OmegaConf.create((ckpt / "config.yaml").read_text())
    head = load_progress_head(ckpt, meta, device)
    if head is not None:
        head.eval().requires_grad_(False)
    return LoadedCheckpoint(model.eval().requires_grad_(False), config, stats, int(meta["step"]), ckpt, meta, head)


def load_progress_head(ckpt: Path, meta: dict[str, Any], device: str | torch.device = "cpu") -> ProgressHead | None:
    """The progress head of a checkpoint directory: built from ``meta["progress_head"]`` and loaded (strictly)
    from ``progress.safetensors``; None unless both are present."""
    from worldmodel.models.progress import ProgressHead, ProgressHeadConfig

    head_cfg = meta.get("progress_head")
    if not head_cfg or not (ckpt / PROGRESS_FILE).is_file():
        return None
    head = ProgressHead(ProgressHeadConfig(**head_cfg))
    head.load_state_dict(load_file(str(ckpt / PROGRESS_FILE), device=str(device)), strict=True)
    return head.to(device)
