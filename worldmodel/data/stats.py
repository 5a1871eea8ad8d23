"""Action statistics and normalisation: 6 arm dims by 1 %/99 % quantiles to [-1, 1], gripper raw
(docs/architecture.md, "Actions and pixels").

Stats come from one streaming pass over the episodes (images are not decoded), are cached as JSON next to the
run (dataset directories may be read-only), and serialise to a plain dict so checkpoints can embed them.

``normalize(a) = clip(2 (a - q01) / (q99 - q01) - 1, -1, 1)`` on dims 0–5, identity on dim 6;
``unnormalize`` is its exact inverse for actions inside [q01, q99]. A dim whose quantile range is narrower
than ``MIN_RANGE`` (e.g. a rotation a scripted expert never uses) is widened symmetrically to that width.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.data.reader import ConcatRLDS, RLDSDataset, episode_actions, episode_states

ARM_DIMS = 6
MIN_RANGE = 1e-3
MIN_STATE_STD = 1e-3  # a state dim that never moves (e.g. a fixed wrist roll) is centred, not blown up


@dataclass
class ActionStats:
    """Per-dimension action statistics (A = 7: world_vector, rotation_delta, gripper).

    Attributes:
        q01, q99: (A,) 1 % / 99 % quantiles (the normalisation bounds for dims 0–5).
        mean, std, min, max: (A,) moments and extremes over every step.
        count: number of steps seen.
        source: fingerprint of the dataset the stats came from (see ``RLDSDataset.fingerprint``).
        state_mean, state_std: (S,) moments of the robot state (``episode_states``) for the state tokens;
            None in stats computed before state tokens existed (a model with state tokens needs them).
    """

    q01: list[float]
    q99: list[float]
    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]
    count: int
    source: dict[str, Any] = field(default_factory=dict)
    state_mean: list[float] | None = None
    state_std: list[float] | None = None

    def __post_init__(self) -> None:
        for name in ("q01", "q99", "mean", "std", "min", "max"):
            values = [float(v) for v in getattr(self, name)]
            if len(values) != 7:
                raise ValueError(f"ActionStats.{name}: {len(values)} values, expected 7")
            setattr(self, name, values)
        for name in ("state_mean", "state_std"):
            if getattr(self, name) is not None:
                setattr(self, name, [float(v) for v in getattr(self, name)])

    @property
    def has_state(self) -> bool:
        return self.state_mean is not None and self.state_std is not None

    def normalize_state(self, state: Any) -> Any:
        """Robot state (..., S) -> ``clip((x - mean) / max(std, MIN_STATE_STD), -5, 5)`` (numpy or torch)."""
        if not self.has_state:
            raise ValueError("these statistics have no robot-state moments (recompute them, or set "
                             "model.state_dim=0)")
        mean = np.asarray(self.state_mean, np.float64)
        std = np.maximum(np.asarray(self.state_std, np.float64), MIN_STATE_STD)
        if state.shape[-1] != len(mean):
            raise ValueError(f"state must have {len(mean)} dims in the last axis, got shape {tuple(state.shape)}")
        if isinstance(state, np.ndarray):
            return ((state.astype(np.float64) - mean) / std).clip(-5, 5).astype(np.float32)
        import torch

        m, s = torch.as_tensor(mean, device=state.device), torch.as_tensor(std, device=state.device)
        return ((state.to(torch.float64) - m) / s).clamp(-5, 5).to(torch.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for checkpoints and the cache file)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionStats:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"ActionStats: unknown keys {sorted(unknown)}")
        return cls(**d)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) arrays of shape (6,) for the arm dims, widened to at least ``MIN_RANGE``."""
        lo, hi = np.asarray(self.q01[:ARM_DIMS], np.float64), np.asarray(self.q99[:ARM_DIMS], np.float64)
        pad = np.maximum(MIN_RANGE - (hi - lo), 0.0) / 2
        return lo - pad, hi + pad

    def normalize(self, actions: Any) -> Any:
        """Map RT-1 actions to model space.

        Args:
            actions: (..., 7) numpy array or torch tensor.

        Returns:
            Same type/shape/dtype: dims 0–5 in [-1, 1] (clipped), dim 6 unchanged.
        """
        lo, hi = self.bounds()
        return _apply(actions, lambda x, lo_, hi_: (2 * (x - lo_) / (hi_ - lo_) - 1).clip(-1, 1), lo, hi)

    def unnormalize(self, actions: Any) -> Any:
        """Map model-space actions back to RT-1 units (exact inverse of :meth:`normalize` inside the bounds).

        Args:
            actions: (..., 7) numpy array or torch tensor, dims 0–5 in [-1, 1].

        Returns:
            Same type/shape/dtype, in RT-1 units.
        """
        lo, hi = self.bounds()
        return _apply(actions, lambda x, lo_, hi_: (x.clip(-1, 1) + 1) / 2 * (hi_ - lo_) + lo_, lo, hi)


def _apply(actions: Any, fn: Any, lo: np.ndarray, hi: np.ndarray) -> Any:
    if actions.shape[-1] != 7:
        raise ValueError(f"actions must have 7 dims in the last axis, got shape {tuple(actions.shape)}")
    if isinstance(actions, np.ndarray):
        out = actions.astype(np.float64)
        out[..., :ARM_DIMS] = fn(out[..., :ARM_DIMS], lo, hi)
        return out.astype(actions.dtype)
    import torch

    x = actions.to(torch.float64)
    lo_t, hi_t = torch.as_tensor(lo, device=x.device), torch.as_tensor(hi, device=x.device)
    arm = fn(x[..., :ARM_DIMS], lo_t, hi_t)
    return torch.cat([arm, x[..., ARM_DIMS:]], dim=-1).to(actions.dtype)


def compute_action_stats(dataset: RLDSDataset | ConcatRLDS, max_episodes: int | None = None,
                         max_samples: int = 2_000_000, seed: int = 0, progress: bool = False) -> ActionStats:
    """One streaming pass over the episodes' actions (images stay JPEG bytes, never decoded).

    Mean/std/min/max are exact over all steps; quantiles are exact while the step count is at most
    ``max_samples`` and otherwise come from a uniform reservoir sample of that size (seeded).

    Args:
        dataset: opened with :func:`~worldmodel.data.reader.open_rlds` (several datasets: all their episodes).
        max_episodes: only the first N episodes (None: all).
        max_samples: reservoir size for quantiles (memory: 7 × 4 bytes each).
        seed: reservoir RNG seed.
        progress: show a tqdm bar.

    Returns:
        :class:`ActionStats` with ``source`` set to the dataset fingerprint.
    """
    from tqdm import tqdm

    stop = dataset.num_episodes if max_episodes is None else min(max_episodes, dataset.num_episodes)
    if stop == 0:
        raise ValueError(f"{dataset.path}: no episodes to compute action statistics from")
    rng = np.random.default_rng(seed)
    reservoir = np.empty((max_samples, 7), np.float32)
    seen = 0
    total, total_sq = np.zeros(7), np.zeros(7)
    lo, hi = np.full(7, np.inf), np.full(7, -np.inf)
    s_total, s_total_sq, s_seen, has_state = 0.0, 0.0, 0, True
    for ep in tqdm(dataset.episodes(0, stop, decode_images=False), total=stop, disable=not progress,
                   desc="action stats", unit="ep"):
        acts = episode_actions(ep["steps"]["action"]).astype(np.float64)
        obs = ep["steps"].get("observation", {})
        has_state = has_state and all(k in obs for k in ("base_pose_tool_reached", "gripper_closed"))
        if has_state:
            states = episode_states(obs).astype(np.float64)
            s_total, s_total_sq, s_seen = s_total + states.sum(0), s_total_sq + (states**2).sum(0), s_seen + len(states)
        total += acts.sum(0)
        total_sq += (acts**2).sum(0)
        lo, hi = np.minimum(lo, acts.min(0)), np.maximum(hi, acts.max(0))
        if seen + len(acts) <= max_samples:  # reservoir not full yet: keep everything
            reservoir[seen:seen + len(acts)] = acts
            seen += len(acts)
            continue
        for row in acts:  # Algorithm R
            if seen < max_samples:
                reservoir[seen] = row
            else:
                j = rng.integers(0, seen + 1)
                if j < max_samples:
                    reservoir[j] = row
            seen += 1
    sample = reservoir[:min(seen, max_samples)].astype(np.float64)
    mean = total / seen
    std = np.sqrt(np.maximum(total_sq / seen - mean**2, 0.0))
    q01, q99 = np.quantile(sample, 0.01, axis=0), np.quantile(sample, 0.99, axis=0)
    state = {}
    if has_state and s_seen:
        s_mean = s_total / s_seen
        state = {"state_mean": s_mean.tolist(),
                 "state_std": np.sqrt(np.maximum(s_total_sq / s_seen - s_mean**2, 0.0)).tolist()}
    return ActionStats(q01=q01.tolist(), q99=q99.tolist(),
                       mean=mean.tolist(), std=std.tolist(), min=lo.tolist(), max=hi.tolist(), count=seen,
                       source={**dataset.fingerprint(), "max_episodes": max_episodes}, **state)


def load_or_compute_stats(dataset: RLDSDataset | ConcatRLDS, cache_path: str | Path | None,
                          **kwargs: Any) -> ActionStats:
    """Load stats cached at ``cache_path`` if they were computed from this dataset, else compute and cache.

    Args:
        dataset: the opened dataset.
        cache_path: JSON file next to the run (e.g. ``runs/x/action_stats.json``); None: never cache.
        **kwargs: forwarded to :func:`compute_action_stats`.

    Returns:
        :class:`ActionStats`.
    """
    path = Path(cache_path).expanduser() if cache_path is not None else None
    if path is not None and path.is_file():
        try:
            stats = ActionStats.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable action-stats cache ({exc}); delete it to recompute") \
                from exc
        # stats cached before robot-state moments existed are recomputed
        if stats.source == {**dataset.fingerprint(), "max_episodes": kwargs.get("max_episodes")} and stats.has_state:
            return stats
    stats = compute_action_stats(dataset, **kwargs)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique per process: ranks may share a run dir
        tmp.write_text(json.dumps(stats.to_dict(), indent=2))
        tmp.replace(path)
    return stats
