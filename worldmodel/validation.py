"""Checks at the boundary: what users hand to the world model and the planner, and where commands will write.

Each check raises one error whose message names the field, so that a bad input never reaches a tensor
operation (a raw shape error) or, worse, silently produces NaN actions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.errors import UserError


class PathError(UserError, ValueError):
    """An output path that cannot be written (a ``ValueError`` too, so that code sharing configuration errors
    between ranks, which catches ``ValueError``, shares it)."""


def check_language(language: Any, dim: int, field: str = "language") -> np.ndarray:
    """An instruction embedding: finite float values, ``dim`` of them (or ``(B, dim)``).

    Args:
        language: (dim,) or (B, dim), array-like.
        dim: the model's ``lang_dim``.
        field: the name used in the message.

    Returns:
        The embedding as a float32 numpy array of the same shape.

    Raises:
        ValueError: naming ``field``: not numeric, wrong shape, or NaN/inf.
    """
    try:
        arr = np.asarray(language, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field} must be a ({dim},) float instruction embedding, got {type(language).__name__}") \
            from exc
    if arr.ndim not in (1, 2) or arr.shape[-1] != dim or arr.size == 0:
        raise ValueError(f"{field} must have shape ({dim},) or (B, {dim}) (the model's lang_dim), got "
                         f"{tuple(arr.shape)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{field} holds {int(bad.sum())} non-finite value(s) (NaN/inf), the first at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    return arr


def check_frames(frames: Any, field: str = "frames", ndims: tuple[int, ...] = (4, 5)) -> np.ndarray:
    """Camera frames: uint8 ``(..., H, W, 3)`` with at least one frame along the time axis.

    Args:
        frames: array-like; (K, H, W, 3) or (B, K, H, W, 3) by default.
        field: the name used in the message.
        ndims: allowed numbers of dimensions (3 for a single frame (H, W, 3)).

    Returns:
        The frames as a numpy array.

    Raises:
        ValueError: naming ``field``: wrong dtype, shape, or no frames (K = 0).
    """
    arr = np.asarray(frames)
    shapes = " or ".join({3: "(H, W, 3)", 4: "(K, H, W, 3)", 5: "(B, K, H, W, 3)"}[n] for n in ndims)
    if arr.dtype != np.uint8:
        raise ValueError(f"{field} must be uint8 images {shapes}, got dtype {arr.dtype}")
    if arr.ndim not in ndims or arr.shape[-1] != 3:
        raise ValueError(f"{field} must have shape {shapes}, got {tuple(arr.shape)}")
    if min(arr.shape) < 1:
        what = "at least one frame (K >= 1)" if arr.ndim >= 4 and arr.shape[-4] == 0 else "non-empty images"
        raise ValueError(f"{field} needs {what}, got shape {tuple(arr.shape)}")
    return arr


def check_goal(goal_frame: Any, goal_weight: float) -> np.ndarray | None:
    """A planner goal frame: None, or uint8 (H, W, 3) scored with ``goal_weight > 0``.

    A goal given with ``goal_weight == 0`` is an error rather than silently ignored (the default weight is 0:
    the caller must say how much the goal counts against task progress).

    Raises:
        ValueError: naming ``goal_frame`` / ``goal_weight``.
    """
    if goal_frame is None:
        return None
    if not goal_weight > 0:
        raise ValueError("goal_frame was given but planner goal_weight is 0, so the goal would be ignored; set "
                         "PlannerConfig(goal_weight=...) > 0 (e.g. 1.0) to score candidates by the goal")
    return check_frames(goal_frame, "goal_frame", ndims=(3,))


def check_language_dim(data_dim: int | None, model_dim: int, where: str) -> None:
    """The dataset's instruction embeddings must have the model's length (``model.lang_dim``).

    Raises:
        ValueError: naming both lengths and ``where`` the data comes from.
    """
    if data_dim is not None and data_dim != model_dim:
        raise ValueError(f"{where}: natural_language_embedding has {data_dim} values per step but the model takes "
                         f"model.lang_dim={model_dim}")


def check_writable_dir(path: str | Path, field: str) -> Path:
    """Fail early, naming ``field``, when ``path`` cannot be created or written (checked without creating it).

    The nearest existing ancestor must be a writable directory. (A root user passes this check on read-only
    permissions; the later OSError is then reported as one line by the CLI.)

    Raises:
        PathError: naming the field and the offending directory.
    """
    p = Path(path).expanduser().absolute()
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PathError(f"{field}={path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathError(f"{field}={path}: {existing} is not writable")
    return p
