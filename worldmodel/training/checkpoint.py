"""Writing checkpoints: atomic directories under ``<run_dir>/checkpoints/``, and choosing where a run resumes.

A checkpoint is written into ``.tmp-step_…``, its manifest last, then renamed into place. "Complete" means the
manifest verifies. ``resume=auto`` walks back from the newest ``step_*`` directory to the newest one whose
files all match their manifest (checksums included), says which ones it skipped and why, and says so when it
starts from scratch; the skipped and incomplete ones are then pruned. Reading checkpoints
(:func:`load_checkpoint`, :func:`resolve_checkpoint`, ...) and their layout are :mod:`worldmodel.io`, shared with
inference; the readers are re-exported here. :func:`export_weights` makes a pickle-free copy to share.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from worldmodel.integrity import CheckpointError, fsync, load_tensors, read_json, write_manifest

# The read side (paths, names, loading) lives in worldmodel.io, shared with inference; re-exported here.
from worldmodel.io import (  # noqa: F401
    CHECKPOINTS,
    CONFIG,
    FILES,
    FORMAT_VERSION,
    MANIFEST,
    META,
    PROGRESS_FILE,
    TMP_PREFIX,
    LoadedCheckpoint,
    _step_of,
    checkpoint_name,
    is_complete,
    is_loadable,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_progress_head,
    read_meta,
    resolve_checkpoint,
    step_dirs,
    verify_checkpoint,
)

OLD_PREFIX = ".tmp-old-"  # a replaced checkpoint, deleted once its successor is in place


@dataclass
class ResumeChoice:
    """Where a run continues from.

    Attributes:
        path: the checkpoint to resume (None: start at step 0).
        skipped: newer ``step_N`` directories that failed verification (pruned once the run is set up).
    """

    path: Path | None
    skipped: list[Path]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def select_resume(run_dir: str | Path, resume: Any, log: Callable[[str], None] = _say) -> ResumeChoice:
    """Decide where a run starts, from the ``resume`` setting; reads only, changes nothing on disk.

    * unset / ``none``: a fresh run; an error if the run directory already holds a complete checkpoint;
    * ``auto``: the newest checkpoint that verifies (:func:`verify_checkpoint`); each newer one is reported
      through ``log`` with the reason, and starting from scratch is reported too;
    * a path: that checkpoint (or the newest that verifies in that run directory); an error if it does not.

    Raises:
        FileExistsError: a fresh run in a run directory with checkpoints.
        CheckpointError: an explicit ``resume`` path that does not verify.
    """
    run_dir = Path(run_dir).expanduser()
    if resume in (None, "", "none", False):
        existing = latest_checkpoint(run_dir)
        if existing is not None:
            raise FileExistsError(f"run_dir={run_dir} already holds checkpoints (latest {existing.name}); "
                                  "pass resume=auto to continue it, or choose another run_dir")
        return ResumeChoice(None, [])
    if str(resume) != "auto":
        p = Path(str(resume)).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"resume={p}: not found")
        if _step_of(p) is not None or (p / MANIFEST).exists() or (p / META).exists():
            verify_checkpoint(p)
            return ResumeChoice(p, [])
        run_dir, explicit = p, True
    else:
        explicit = False
    skipped: list[Path] = []
    for ckpt in reversed(step_dirs(run_dir)):
        try:
            verify_checkpoint(ckpt)
        except CheckpointError as exc:
            log(f"resume={resume}: skipping {ckpt.name}: {exc}")
            skipped.append(ckpt)
            continue
        if skipped:
            log(f"resume={resume}: resuming from {ckpt.name}, the newest checkpoint that verifies")
        return ResumeChoice(ckpt, skipped)
    if explicit:
        raise CheckpointError(f"resume={run_dir}: no checkpoint there verifies")
    log(f"resume=auto: no complete checkpoint in {run_dir / CHECKPOINTS}; starting from step 0")
    return ResumeChoice(None, skipped)


def prune_checkpoints(run_dir: str | Path, skipped: list[Path] | None = None) -> list[Path]:
    """Remove what killed writers and damaged files left: temp directories, incomplete ``step_N`` directories
    and the ``skipped`` ones (failed verification). A replaced checkpoint whose successor never landed is put
    back instead. Returns what was removed."""
    root = Path(run_dir).expanduser() / CHECKPOINTS
    if not root.is_dir():
        return []
    for old in sorted(p for p in root.iterdir() if p.name.startswith(OLD_PREFIX)):
        name = old.name[len(OLD_PREFIX):].rsplit("-", 1)[0]
        step = _step_of(Path(name))
        if step is not None and not (root / name).exists() and is_complete(old, step):
            old.rename(root / name)
    removed = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)]
    removed += [p for p in step_dirs(run_dir) if p in (skipped or []) or not is_complete(p)]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


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


def _write_file(directory: Path, name: str, write: Callable[[Path], None]) -> None:
    """Write one file of a checkpoint (a seam: the fault-injection tests stop a writer here)."""
    write(directory / name)


def write_checkpoint(run_dir: str | Path, contents: CheckpointContents, keep_last: int,
                     before_rename: Callable[[Path], None] | None = None) -> Path:
    """Write a checkpoint atomically (temp directory, manifest last, rename) and keep the newest ``keep_last``.

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
    _write_file(tmp, "model.safetensors", lambda p: _save_tensors(contents.model, p))
    _write_file(tmp, "ema.safetensors", lambda p: _save_tensors(contents.ema, p))
    _write_file(tmp, "projector.safetensors", lambda p: _save_tensors(contents.projector, p))
    if contents.progress_head is not None:
        _write_file(tmp, PROGRESS_FILE, lambda p: _save_tensors(contents.progress_head, p))
    _write_file(tmp, "optimizer.pt", lambda p: torch.save(contents.optimizer, p))
    _write_file(tmp, "trainer_state.pt", lambda p: torch.save(contents.trainer_state, p))
    _write_file(tmp, CONFIG, lambda p: p.write_text(contents.config_yaml))
    meta = {"format": FORMAT_VERSION, **contents.meta, "step": contents.step}
    _write_file(tmp, META, lambda p: p.write_text(json.dumps(meta, indent=2)))
    for f in tmp.iterdir():
        fsync(f)
    write_manifest(tmp, contents.step)  # last: it vouches for the files above
    fsync(tmp)
    if before_rename is not None:
        before_rename(tmp)
    final = root / name
    old = root / f"{OLD_PREFIX}{name}-{os.getpid()}"
    if final.exists():  # the same step saved again (e.g. a signal right after a periodic save)
        final.rename(old)  # put back by prune_checkpoints if killed before the next rename
    tmp.rename(final)
    fsync(root)
    shutil.rmtree(old, ignore_errors=True)
    for stale in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def export_weights(path: str | Path, out: str | Path, progress_head: dict[str, torch.Tensor] | None = None) -> Path:
    """Copy a checkpoint's weights, config and metadata (no pickles) to ``out`` with a fresh manifest.

    The result loads with :func:`load_checkpoint`, :class:`worldmodel.WorldModel` and ``init=``, and holds no
    file that ``torch.load`` would have to unpickle, so it is safe to share.

    Args:
        path: a checkpoint or run directory.
        out: the new checkpoint directory (must not exist).
        progress_head: a state dict that replaces the checkpoint's progress head (same shape; e.g. a scorer
            re-trained by :mod:`worldmodel.training.scorer`); the source must have a head.

    Returns:
        ``out``.
    """
    src, dest = resolve_checkpoint(path), Path(out).expanduser()
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    if progress_head is not None and not (src / PROGRESS_FILE).is_file():
        raise ValueError(f"{src} has no {PROGRESS_FILE} to replace")
    tmp = dest.with_name(f"{TMP_PREFIX}{dest.name}-{os.getpid()}")
    tmp.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.suffix == ".safetensors":
            old = load_tensors(src, f.name)  # verified (manifest, format) before it is shared
            if f.name == PROGRESS_FILE and progress_head is not None:
                if {k: tuple(v.shape) for k, v in old.items()} != {k: tuple(v.shape) for k, v in progress_head.items()}:
                    raise ValueError(f"the replacement progress head does not match {src / PROGRESS_FILE}'s shapes")
                _save_tensors(progress_head, tmp / f.name)
                fsync(tmp / f.name)
                continue
        if f.name in (CONFIG, META) or f.suffix == ".safetensors":
            shutil.copyfile(f, tmp / f.name)
            fsync(tmp / f.name)
    write_manifest(tmp, int(read_json(src / META)["step"]))
    tmp.rename(dest)
    return dest
