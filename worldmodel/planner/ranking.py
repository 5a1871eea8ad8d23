"""Ranking quality of a planner's scores against the true simulator's, per decision and per episode.

Per decision (:func:`rank_decision`), over the N final candidates:

* ``spearman``: Spearman rank correlation between the planner's scores and the true progress of the candidates
  (:func:`spearman`; NaN when either is constant, e.g. every candidate left the task where it was);
* ``top1``: whether the chosen candidate is a true best (ties count);
* ``regret``: true progress of the true best minus that of the chosen one (>= 0, in stages);
* ``psnr`` / ``ssim``: of each candidate's imagined future against its true rendered one, mean over candidates
  and steps (only for rungs that imagine; None otherwise);
* ``action_corr``: does the imagination carry the candidates' *differences*? The correlation between the
  candidates' imagined last frames and their true ones, each centred on the decision's mean over candidates
  (:func:`action_response`): near 1 when the futures differ as the actions make them differ, near 0 when they
  differ by sampling noise or not at all (exactly 0), undefined when the true futures do not differ — at 0 no scorer
  of the imagined futures can rank the candidates
  (twelfth session: the reference imagines every chunk alike, docs/experiments.md).

:func:`summarize` turns a list of them into the per-episode record that the eval harness stores in
``eval_info.json`` (``extras.ranking``), and :func:`pool` the per-task means. NaN values are skipped in means
and written as ``null``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

METRICS = ("spearman", "top1", "regret", "psnr", "ssim", "action_corr")


def average_ranks(values: Any) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties given the mean of the ranks they span (as ``scipy.stats.rankdata``)."""
    x = np.asarray(values, np.float64).reshape(-1)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0  # mean of ranks start+1 .. end
            start = end
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation of two equally long 1-D arrays (ties: average ranks).

    Returns:
        A float in [-1, 1]; NaN when there are fewer than two values, a value is not finite, or either array is
        constant (the correlation is undefined).
    """
    x, y = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"spearman needs equally long arrays, got {x.shape} and {y.shape}")
    if len(x) < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denom == 0.0:
        return math.nan
    return float(np.clip(float(rx @ ry) / denom, -1.0, 1.0))


@dataclass
class DecisionRanking:
    """How one decision's scores rank the candidates against the true simulator (see the module docstring)."""

    spearman: float
    top1: bool
    regret: float
    psnr: float | None = None
    ssim: float | None = None
    action_corr: float | None = None


def image_quality(imagined: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Mean PSNR (dB; identical pairs, whose PSNR is infinite, are skipped) and SSIM of uint8 (..., H, W, 3)
    imagined frames against the true ones of the same shape."""
    from worldmodel.image_metrics import psnr, ssim

    a = np.asarray(imagined).reshape(-1, *np.shape(imagined)[-3:])
    b = np.asarray(true).reshape(-1, *np.shape(true)[-3:])
    if a.shape != b.shape:
        raise ValueError(f"imagined {a.shape} and true {b.shape} frames differ in shape")
    psnrs = [psnr(x, y) for x, y in zip(b, a, strict=True)]
    finite = [p for p in psnrs if math.isfinite(p)]
    return (float(np.mean(finite)) if finite else math.nan,
            float(np.mean([ssim(x, y) for x, y in zip(b, a, strict=True)])))


@dataclass
class ActionResponse:
    """How n futures of the same state differ from each other, imagined against true (:func:`action_response`).

    Attributes:
        corr: Pearson correlation of the centred imagined and true frames: 0 when the imagined futures do not
            differ at all while the true ones do (the action ignored), NaN when the true futures do not differ
            (nothing to follow).
        imagined_spread: mean over futures of the L2 norm of a future's centred (pooled, [0, 1]) last frame.
        true_spread: the same for the true futures.
    """

    corr: float
    imagined_spread: float
    true_spread: float


# a centred stack whose spread is below this is constant (rounding of the mean leaves ~1e-15, not 0)
_CONSTANT = 1e-9


def action_response(imagined: np.ndarray, true: np.ndarray, pool: int = 4) -> ActionResponse:
    """Do imagined futures differ from each other as the true ones do?

    Each future's last frame is average-pooled over ``pool`` x ``pool`` pixels (a few pixels of misplacement do
    not count as disagreement) and centred on the mean over the n futures; the two centred stacks are correlated.

    Args:
        imagined, true: uint8 (n, T, H, W, 3) futures of n candidates from one state, the same shape (n >= 2).
        pool: pooling window in pixels (H and W are cropped to multiples of it).

    Returns:
        :class:`ActionResponse` (``corr`` 0 when only the true futures vary, NaN when they do not).
    """
    a, b = np.asarray(imagined), np.asarray(true)
    if a.shape != b.shape or a.ndim != 5 or a.shape[0] < 2:
        raise ValueError(f"action_response needs two (n >= 2, T, H, W, 3) stacks of one shape, got {a.shape} "
                         f"and {b.shape}")
    if pool < 1 or pool > min(a.shape[2:4]):
        raise ValueError(f"pool must be in [1, {min(a.shape[2:4])}], got {pool}")

    def centred(x: np.ndarray) -> np.ndarray:
        last = x[:, -1].astype(np.float64) / 255.0  # (n, H, W, 3)
        n, h, w, c = last.shape
        h, w = h - h % pool, w - w % pool
        pooled = last[:, :h, :w].reshape(n, h // pool, pool, w // pool, pool, c).mean((2, 4)).reshape(n, -1)
        out = pooled - pooled.mean(0)
        return out if float(np.abs(out).max()) > _CONSTANT else np.zeros_like(out)

    ca, cb = centred(a), centred(b)
    na, nb = float(np.sqrt((ca * ca).sum())), float(np.sqrt((cb * cb).sum()))
    corr = math.nan if nb == 0 else 0.0 if na == 0 else float((ca * cb).sum()) / (na * nb)
    return ActionResponse(corr, float(np.linalg.norm(ca, axis=1).mean()), float(np.linalg.norm(cb, axis=1).mean()))


def rank_decision(scores: Any, true_progress: Any, chosen: int | None = None, imagined: np.ndarray | None = None,
                  true_frames: np.ndarray | None = None) -> DecisionRanking:
    """Score one decision.

    Args:
        scores: (N,) the planner's scores (higher is better; ``PlanResult.scores``).
        true_progress: (N,) the true progress of the same candidates (:class:`~worldmodel.planner.oracle.Rollouts`).
        chosen: index of the executed candidate (default: the first best score, as the planner picks it).
        imagined, true_frames: optional uint8 (N, T, H, W, 3) futures, imagined and true, at one resolution
            (their PSNR / SSIM and, for N >= 2, ``action_corr``).

    Returns:
        :class:`DecisionRanking`.
    """
    s, p = np.asarray(scores, np.float64).reshape(-1), np.asarray(true_progress, np.float64).reshape(-1)
    if s.shape != p.shape or s.size == 0:
        raise ValueError(f"scores {s.shape} and true progress {p.shape} must be equally long and non-empty")
    pick = int(np.argmax(s)) if chosen is None else int(chosen)
    best = float(p.max())
    out = DecisionRanking(spearman(s, p), bool(p[pick] >= best), best - float(p[pick]))
    if imagined is not None and true_frames is not None:
        out.psnr, out.ssim = image_quality(imagined, true_frames)
        if len(imagined) > 1:
            out.action_corr = action_response(imagined, true_frames).corr
    return out


def _mean(values: list[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


def _json(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    return None if not math.isfinite(float(value)) else round(float(value), 6)


def summarize(records: list[DecisionRanking]) -> dict[str, Any]:
    """Per-episode ranking record: the per-decision lists (NaN as None) and their means (``<metric>_mean``,
    None when no decision has a finite value), plus ``decisions``."""
    out: dict[str, Any] = {"decisions": len(records)}
    for name in METRICS:
        values = [getattr(r, name) for r in records]
        out[name] = [_json(v) for v in values]
        out[f"{name}_mean"] = _mean([float(v) if isinstance(v, bool) else v for v in values])
    return out


def pool(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over every decision of several episodes' :func:`summarize` records (``{}`` when none has one):
    ``<metric>_mean`` and ``n_<metric>`` (decisions with a finite value), plus ``decisions``."""
    episodes = [e for e in episodes if e]
    if not episodes:
        return {}
    out: dict[str, Any] = {"decisions": int(sum(e.get("decisions", 0) for e in episodes))}
    for name in METRICS:
        values = [float(v) for e in episodes for v in e.get(name, []) if v is not None]
        finite = [v for v in values if math.isfinite(v)]
        out[f"{name}_mean"] = float(np.mean(finite)) if finite else None
        out[f"n_{name}"] = len(finite)
    return out
