"""Writing checkpoints: atomic directories under ``<run_dir>/checkpoints/``.

Reading them (:func:`load_checkpoint`, :func:`resolve_checkpoint`, ...) and the layout of one checkpoint
directory are :mod:`worldmodel.io`, shared with inference; the readers are re-exported here.

A checkpoint is written into ``.tmp-step_…`` and renamed into place, so ``step_*`` directories are always
complete; ``resume=auto`` only considers those (and checks their files), never a temp directory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

# The read side (paths, names, loading) lives in worldmodel.io, shared with inference; re-exported here.
from worldmodel.io import (  # noqa: F401
    CHECKPOINTS,
    FILES,
    FORMAT_VERSION,
    META,
    PROGRESS_FILE,
    TMP_PREFIX,
    LoadedCheckpoint,
    checkpoint_name,
    is_complete,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_progress_head,
    read_meta,
    resolve_checkpoint,
)


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


