"""Checkpoint integrity: a manifest of every file (size + SHA-256), written last, and loaders that trust nothing.

``manifest.json`` lists every other file of a checkpoint directory with its size and SHA-256. It is written
last (temp file + ``os.replace``), after every other file has been fsync'ed, so its presence means the files
were complete when it was written, and verifying it tells whether they still are.

Loading never unpickles arbitrary objects: ``*.pt`` files go through ``torch.load(weights_only=True)`` (which
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot override, since the argument is explicit), tensors through
safetensors. Every failure is a :class:`CheckpointError` naming the file.

Checkpoints written before manifests existed ("legacy") still load for evaluation and ``init=``; for
``resume`` they are verified by loading every file (safetensors parsed, pickles loaded weights-only).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from worldmodel.errors import UserError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
META = "meta.json"
CONFIG = "config.yaml"
WEIGHT_FILES = ("model.safetensors", "ema.safetensors", "projector.safetensors")
TRAINING_FILES = ("optimizer.pt", "trainer_state.pt")  # only resuming reads these (pickles, weights-only)
# What evaluation, the planner and ``init=`` need: a checkpoint with just these is pickle-free and shareable.
INFERENCE_FILES = (CONFIG, META, "ema.safetensors")
RESUME_FILES = (*WEIGHT_FILES, *TRAINING_FILES, CONFIG, META)
_CHUNK = 1 << 22


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used (incomplete, corrupt, modified, or holding pickled objects).

    The message names the offending file. A ``ValueError`` too, so that code catching configuration errors
    (e.g. the trainer sharing rank 0's errors with the other ranks) handles it.
    """


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    """Flush a file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(ckpt: Path, step: int | None) -> dict[str, Any]:
    """Write ``manifest.json`` over every other (non-hidden) file of ``ckpt``, atomically; returns it."""
    names = sorted(p.name for p in ckpt.iterdir() if p.is_file() and p.name != MANIFEST
                   and not p.name.startswith("."))
    files = {n: {"bytes": (ckpt / n).stat().st_size, "sha256": sha256(ckpt / n)} for n in names}
    manifest = {"format": MANIFEST_FORMAT, "step": step, "files": files}
    tmp = ckpt / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    fsync(tmp)
    os.replace(tmp, ckpt / MANIFEST)
    return manifest


def read_manifest(ckpt: Path) -> dict[str, Any] | None:
    """The checkpoint's manifest, or None for a legacy checkpoint (none written).

    Raises:
        CheckpointError: the manifest exists but is unreadable.
    """
    path = ckpt / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if not isinstance(files, dict) or not all({"bytes", "sha256"} <= set(v) for v in files.values()):
            raise ValueError("malformed file list")
        return manifest
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({exc})") from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of a checkpoint (``meta.json``), or a :class:`CheckpointError` naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def check_file(ckpt: Path, name: str, manifest: dict[str, Any] | None, checksum: bool = True) -> None:
    """Check one file against the manifest (present, same size, and with ``checksum`` the same SHA-256).

    A file the manifest does not list (or a legacy checkpoint) is only required to exist.

    Raises:
        CheckpointError: naming the file and what is wrong.
    """
    path = ckpt / name
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    entry = (manifest or {}).get("files", {}).get(name)
    if entry is None:
        return
    size = path.stat().st_size
    if size != int(entry["bytes"]):
        raise CheckpointError(f"{path}: {size} bytes but {MANIFEST} says {entry['bytes']} (truncated or modified)")
    if checksum and sha256(path) != entry["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 differs from {MANIFEST} (corrupt or modified)")


def check_checkpoint(ckpt: Path, need: tuple[str, ...] = RESUME_FILES, checksum: bool = True,
                     step: int | None = None) -> None:
    """Raise :class:`CheckpointError` (naming the file) unless ``ckpt`` holds the files in ``need``, intact.

    With a manifest: every needed file must be listed, and every needed file (with ``need=RESUME_FILES``,
    every listed file) must have the listed size and, with ``checksum``, SHA-256. Without one (legacy): the
    needed files must exist, and with ``checksum`` and ``need=RESUME_FILES`` every file must load.

    Args:
        ckpt: the checkpoint directory.
        need: files that must be present.
        checksum: compare SHA-256 (otherwise sizes only: cheap, for listing).
        step: the step the directory's name says; ``meta.json`` (and the manifest) must agree.
    """
    if not ckpt.is_dir():
        raise CheckpointError(f"{ckpt}: not a checkpoint directory")
    manifest = read_manifest(ckpt)
    if manifest is not None:
        missing = [n for n in need if n not in manifest["files"]]
        if missing:
            raise CheckpointError(f"{ckpt / missing[0]}: not listed in {MANIFEST} (a checkpoint without "
                                  f"{', '.join(missing)})")
        if step is not None and manifest.get("step") != step:
            raise CheckpointError(f"{ckpt / MANIFEST}: step {manifest.get('step')}, the directory says {step}")
        names = list(manifest["files"]) if need == RESUME_FILES else list(need)
        for name in names:
            check_file(ckpt, name, manifest, checksum)
    else:
        for name in need:
            check_file(ckpt, name, None)
        if checksum and need == RESUME_FILES:
            for name in sorted(p.name for p in ckpt.iterdir() if p.suffix in (".safetensors", ".pt")):
                _ = load_tensors(ckpt, name, manifest=None) if name.endswith(".safetensors") \
                    else load_pickle_free(ckpt, name, manifest=None)
    if step is not None:
        meta_step = read_json(ckpt / META).get("step")
        if meta_step != step:
            raise CheckpointError(f"{ckpt / META}: step {meta_step}, the directory says {step}")


def load_tensors(ckpt: Path, name: str, device: str | torch.device = "cpu",
                 manifest: dict[str, Any] | None | bool = True) -> dict[str, torch.Tensor]:
    """Load a safetensors file of a checkpoint after checking it against the manifest.

    Args:
        ckpt: the checkpoint directory.
        name: file name, e.g. ``ema.safetensors``.
        device: where to put the tensors.
        manifest: True: read the checkpoint's manifest (if any) and verify size and SHA-256; None: no check.

    Raises:
        CheckpointError: missing, modified or not a safetensors file, naming it.
    """
    from safetensors.torch import load_file

    if manifest is True:
        manifest = read_manifest(ckpt)
    check_file(ckpt, name, manifest or None)
    path = ckpt / name
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises SafetensorError (not importable by a stable name) and others
        raise CheckpointError(f"{path}: not a readable safetensors file "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc


def load_pickle_free(ckpt: Path, name: str, manifest: dict[str, Any] | None | bool = True) -> Any:
    """``torch.load(weights_only=True)`` of a checkpoint file (optimizer / trainer state): tensors, numbers,
    strings and containers only, never arbitrary objects, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says.

    Raises:
        CheckpointError: missing, modified, truncated, or holding other objects, naming the file.
    """
    import pickle

    if manifest is True:
        manifest = read_manifest(ckpt)
    check_file(ckpt, name, manifest or None)
    path = ckpt / name
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain containers "
                              "(loaded with weights_only=True; never unpickle files you did not write)") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({str(exc).splitlines()[0] if str(exc) else exc!r})") from exc
