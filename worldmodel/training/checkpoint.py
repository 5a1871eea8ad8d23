"""Checkpoints: atomic directories under ``<run_dir>/checkpoints/`` and :func:`load_checkpoint` for users.

Layout of one checkpoint (``step_00001000/``)::

    model.safetensors      student weights (fp32, unsharded)
    ema.safetensors        EMA weights: the Self-Flow teacher and the weights to evaluate / plan with
    projector.safetensors  Self-Flow projector (student side)
    progress.safetensors   progress head (fine-tuning with ``train.progress_weight > 0`` only; its shape is
                           ``meta["progress_head"]``)
    optimizer.pt           AdamW state (unsharded)
    trainer_state.pt       step, LR scheduler, EMA update count, and per rank: RNG states (python, numpy, torch,
                           CUDA, the training generator) and the data-stream position
    config.yaml            the resolved run config
    meta.json              step, mode, model config, action statistics, world size, progress head config
                           (written last)

A checkpoint is written into ``.tmp-step_…`` and renamed into place, so ``step_*`` directories are always
complete; ``resume=auto`` only considers those (and checks their files), never a temp directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from worldmodel.data.stats import ActionStats
from worldmodel.models import ModelConfig, VideoActionDiT, build_model
from worldmodel.models.progress import ProgressHead, ProgressHeadConfig

CHECKPOINTS = "checkpoints"
TMP_PREFIX = ".tmp-"
META = "meta.json"
PROGRESS_FILE = "progress.safetensors"  # optional: only fine-tuning checkpoints with a progress head have it
FORMAT_VERSION = 1
FILES = ("model.safetensors", "ema.safetensors", "projector.safetensors", "optimizer.pt", "trainer_state.pt",
         "config.yaml", META)
_NAME = re.compile(r"^step_(\d{8,})$")


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
class CheckpointContents:
    """What the trainer hands to :func:`write_checkpoint` (all tensors on CPU, unsharded).

    Attributes:
        step: optimiser steps done.
        model, ema, projector: state dicts.
        optimizer: optimizer state dict.
        trainer_state: scheduler, EMA count, per-rank RNG and data states.
        meta: JSON-able metadata (``step`` is added).
        config_yaml: the resolved run config.
        progress_head: progress head state dict (written as ``progress.safetensors``), or None.
    """

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    projector: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    trainer_state: dict[str, Any]
    meta: dict[str, Any]
    config_yaml: str
    progress_head: dict[str, torch.Tensor] | None = None


def _save_tensors(state: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(run_dir: str | Path, contents: CheckpointContents, keep_last: int,
                     before_rename: Callable[[Path], None] | None = None) -> Path:
    """Write a checkpoint atomically (temp directory + rename) and keep only the newest ``keep_last``.

    Args:
        run_dir: the run directory.
        contents: what to write.
        keep_last: complete checkpoints to keep (>= 1).
        before_rename: test hook called with the filled temp directory.

    Returns:
        The checkpoint directory.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(contents.step)
    tmp = root / f"{TMP_PREFIX}{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _save_tensors(contents.model, tmp / "model.safetensors")
    _save_tensors(contents.ema, tmp / "ema.safetensors")
    _save_tensors(contents.projector, tmp / "projector.safetensors")
    written = list(FILES)
    if contents.progress_head is not None:
        _save_tensors(contents.progress_head, tmp / PROGRESS_FILE)
        written.append(PROGRESS_FILE)
    torch.save(contents.optimizer, tmp / "optimizer.pt")
    torch.save(contents.trainer_state, tmp / "trainer_state.pt")
    (tmp / "config.yaml").write_text(contents.config_yaml)
    meta = {"format": FORMAT_VERSION, **contents.meta, "step": contents.step}
    (tmp / META).write_text(json.dumps(meta, indent=2))  # last: its presence marks the files as written
    for f in written:
        _fsync(tmp / f)
    if before_rename is not None:
        before_rename(tmp)
    final = root / name
    if final.exists():  # the same step saved again (e.g. a signal right after a periodic save)
        old = root / f"{TMP_PREFIX}old-{name}-{os.getpid()}"
        final.rename(old)
        shutil.rmtree(old)
    tmp.rename(final)
    _fsync(root)
    for stale in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def remove_stale_temp(run_dir: str | Path) -> list[Path]:
    """Delete temp directories left by killed writers (they are never read); returns what was removed."""
    root = Path(run_dir) / CHECKPOINTS
    stale = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)] if root.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


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
    head_cfg = meta.get("progress_head")
    if not head_cfg or not (ckpt / PROGRESS_FILE).is_file():
        return None
    head = ProgressHead(ProgressHeadConfig(**head_cfg))
    head.load_state_dict(load_file(str(ckpt / PROGRESS_FILE), device=str(device)), strict=True)
    return head.to(device)
