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
    manifest.json          size and SHA-256 of every other file (written last; :mod:`worldmodel.integrity`)

``worldmodel.training.checkpoint`` writes them (atomically: temp directory, manifest last, rename); this module
finds and loads them. "Complete" means the manifest lists every file with its size; loading checks each file it
reads against the manifest, and ``resume=auto`` checks the checksums of everything. Evaluation, the planner and
``init=`` read only ``config.yaml``, ``meta.json`` and the safetensors files, so a checkpoint without the two
pickle files can be shared and loaded.

Pixels: the model sees frames as float ``(..., 3, H, W)`` in [-1, 1]; cameras and videos are uint8
``(..., H, W, 3)``. :func:`pixels_to_model` and :func:`model_to_pixels` are the only conversions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from worldmodel.integrity import (  # noqa: F401  (CONFIG, MANIFEST: re-exported for the writer and tests)
    CONFIG,
    INFERENCE_FILES,
    MANIFEST,
    META,
    RESUME_FILES,
    CheckpointError,
    check_checkpoint,
    load_tensors,
    read_json,
)

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
PROGRESS_FILE = "progress.safetensors"  # optional: only fine-tuning checkpoints with a progress head have it
FORMAT_VERSION = 1
FILES = RESUME_FILES  # every file a resume needs (progress.safetensors only when meta names a head)
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


def _step_of(path: Path) -> int | None:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def is_complete(path: Path, step: int | None = None) -> bool:
    """True for a ``step_N`` directory whose manifest lists every file a resume needs, each with its listed size
    (cheap: no checksums; :func:`verify_checkpoint` compares those). Legacy checkpoints (no manifest): every
    file present and ``meta.json`` naming the step. ``step`` overrides the step read from the name."""
    step = _step_of(path) if step is None else step
    if step is None:
        return False
    try:
        check_checkpoint(path, checksum=False, step=step)
    except CheckpointError:
        return False
    return True


def is_loadable(path: Path) -> bool:
    """True for a directory holding what inference and ``init=`` read (``config.yaml``, ``meta.json``,
    ``ema.safetensors``), with the sizes its manifest lists; the pickle files are not needed."""
    try:
        check_checkpoint(path, INFERENCE_FILES, checksum=False)
    except CheckpointError:
        return False
    return True


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`~worldmodel.integrity.CheckpointError` (naming the file) unless every file of the
    checkpoint matches its manifest, checksums included (legacy checkpoints: every file loads)."""
    check_checkpoint(path, checksum=True, step=_step_of(path))


def step_dirs(run_dir: str | Path) -> list[Path]:
    """Every ``step_N`` directory of a run, complete or not, oldest first."""
    root = Path(run_dir).expanduser() / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if _step_of(p) is not None and p.is_dir()), key=_step_of)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run (:func:`is_complete`), oldest first; temp and incomplete ones are ignored."""
    return [p for p in step_dirs(run_dir) if is_complete(p)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory (→ its newest checkpoint), to load weights from.

    Only what inference and ``init=`` read is required (:func:`is_loadable`), so a weights-only export
    (``worldmodel.training.checkpoint.export_weights``) resolves too.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: naming the missing or damaged file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if is_loadable(p):
        return p
    runs = [c for c in step_dirs(p) if is_loadable(c)]
    if runs:
        return runs[-1]
    if (p / META).exists() or (p / MANIFEST).exists() or _step_of(p) is not None:
        check_checkpoint(p, INFERENCE_FILES, checksum=False)  # raises, naming the file
    raise CheckpointError(f"{p}: not a checkpoint (a directory with {', '.join(INFERENCE_FILES)}) nor a run "
                          f"directory holding {CHECKPOINTS}/step_N/")


def read_meta(path: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint (or of a run directory's latest checkpoint)."""
    return read_json(resolve_checkpoint(path) / META)


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
        FileNotFoundError: the path does not exist.
        CheckpointError: a file it needs is missing, damaged or differs from the manifest (named).
    """
    from worldmodel.data.stats import ActionStats
    from worldmodel.models import ModelConfig, build_model

    ckpt = resolve_checkpoint(path)
    meta = read_json(ckpt / META)
    model_cfg = ModelConfig.from_dict({**meta["model"], "checkpointing": False})
    with torch.device("meta"):
        model = build_model(model_cfg)
    state = load_tensors(ckpt, "ema.safetensors" if ema else "model.safetensors", device)
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
    head.load_state_dict(load_tensors(ckpt, PROGRESS_FILE, device), strict=True)
    return head.to(device)
