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
    manifest.json          size and SHA-256 of every other file (written last; see
                           :mod:`worldmodel.training.integrity`)

A checkpoint is written into ``.tmp-step_…``, its manifest last, then renamed into place. "Complete" means the
manifest verifies. ``resume=auto`` walks back from the newest ``step_*`` directory to the newest one whose
files all match their manifest (checksums included), says which ones it skipped and why, and says so when it
starts from scratch; the skipped and incomplete ones are then pruned. Evaluation, the planner and ``init=``
read only ``config.yaml``, ``meta.json`` and the safetensors files (checked against the manifest), so a
checkpoint without the two pickle files (:func:`export_weights`) can be shared and loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

from worldmodel.data.stats import ActionStats
from worldmodel.models import ModelConfig, VideoActionDiT, build_model
from worldmodel.models.progress import ProgressHead, ProgressHeadConfig
from worldmodel.training.integrity import (
    CONFIG,
    INFERENCE_FILES,
    MANIFEST,
    RESUME_FILES,
    CheckpointError,
    check_checkpoint,
    fsync,
    load_tensors,
    read_json,
    write_manifest,
)

CHECKPOINTS = "checkpoints"
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".tmp-old-"  # a replaced checkpoint, deleted once its successor is in place
META = "meta.json"
PROGRESS_FILE = "progress.safetensors"  # optional: only fine-tuning checkpoints with a progress head have it
FORMAT_VERSION = 1
FILES = RESUME_FILES  # every file a resume needs (progress.safetensors only when meta names a head)
_NAME = re.compile(r"^step_(\d{8,})$")


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
    """Raise :class:`~worldmodel.training.integrity.CheckpointError` (naming the file) unless every file of the
    checkpoint matches its manifest, checksums included (legacy checkpoints: every file loads)."""
    check_checkpoint(path, checksum=True, step=_step_of(path))


def _step_dirs(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir).expanduser() / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if _step_of(p) is not None and p.is_dir()), key=_step_of)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run (:func:`is_complete`), oldest first; temp and incomplete ones are ignored."""
    return [p for p in _step_dirs(run_dir) if is_complete(p)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory (→ its newest checkpoint), to load weights from.

    Only what inference and ``init=`` read is required (:func:`is_loadable`).

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: naming the missing or damaged file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if is_loadable(p):
        return p
    runs = [c for c in _step_dirs(p) if is_loadable(c)]
    if runs:
        return runs[-1]
    if (p / META).exists() or (p / MANIFEST).exists() or _step_of(p) is not None:
        check_checkpoint(p, INFERENCE_FILES, checksum=False)  # raises, naming the file
    raise CheckpointError(f"{p}: not a checkpoint (a directory with {', '.join(INFERENCE_FILES)}) nor a run "
                          f"directory holding {CHECKPOINTS}/step_N/")


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
    for ckpt in reversed(_step_dirs(run_dir)):
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
    removed += [p for p in _step_dirs(run_dir) if p in (skipped or []) or not is_complete(p)]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def remove_stale_temp(run_dir: str | Path) -> list[Path]:
    """Delete temp directories left by killed writers (they are never read); returns what was removed."""
    root = Path(run_dir) / CHECKPOINTS
    stale = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)] if root.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def read_meta(path: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint (or of a run directory's latest checkpoint)."""
    return read_json(resolve_checkpoint(path) / META)


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


def export_weights(path: str | Path, out: str | Path) -> Path:
    """Copy a checkpoint's weights, config and metadata (no pickles) to ``out`` with a fresh manifest.

    The result loads with :func:`load_checkpoint`, :class:`worldmodel.WorldModel` and ``init=``, and holds no
    file that ``torch.load`` would have to unpickle, so it is safe to share.

    Args:
        path: a checkpoint or run directory.
        out: the new checkpoint directory (must not exist).

    Returns:
        ``out``.
    """
    src, dest = resolve_checkpoint(path), Path(out).expanduser()
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    tmp = dest.with_name(f"{TMP_PREFIX}{dest.name}-{os.getpid()}")
    tmp.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.suffix == ".safetensors":
            load_tensors(src, f.name)  # verified (manifest, format) before it is shared
        if f.name in (CONFIG, META) or f.suffix == ".safetensors":
            shutil.copyfile(f, tmp / f.name)
            fsync(tmp / f.name)
    write_manifest(tmp, int(read_json(src / META)["step"]))
    tmp.rename(dest)
    return dest


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
    head_cfg = meta.get("progress_head")
    if not head_cfg or not (ckpt / PROGRESS_FILE).is_file():
        return None
    head = ProgressHead(ProgressHeadConfig(**head_cfg))
    head.load_state_dict(load_tensors(ckpt, PROGRESS_FILE, device), strict=True)
    return head.to(device)
