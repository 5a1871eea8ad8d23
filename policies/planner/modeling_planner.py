"""The ``planner`` policy: at every decision, search over the world model's imagined futures, execute the best.

Every ``execute_steps`` actions it calls :meth:`worldmodel.planner.Planner.plan` on the last K camera frames and
the instruction embedding, queues the first ``execute_steps`` actions of the best chunk, and records the
decision's latency and the planner's propose / imagine / score split. Context handling, the video hook and the
latency statistics are shared with :class:`~policies.dit.DiTPolicy` (the same model without search).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np

from policies.dit.modeling_dit import DiTPolicy, load_world_model
from policies.planner.configuration_planner import PlannerPolicyConfig
from worldmodel.planner import make_planner


class PlannerPolicy(DiTPolicy):
    """Model-predictive control with the world model.

    Args:
        env: the env (unused, kept for the shared factory signature).
        config: :class:`PlannerPolicyConfig`; keyword overrides of its fields too (``checkpoint=...``,
            ``planner={"method": "cem"}``).
        world_model: an already built :class:`worldmodel.WorldModel` (instead of ``config.checkpoint``).
        seed: default seed of the planner's noise.
    """

    def __init__(self, env: Any = None, config: PlannerPolicyConfig | None = None, world_model: Any = None,
                 seed: int | None = None, **overrides: Any) -> None:
        del env
        base = config or PlannerPolicyConfig()
        known = {f.name for f in fields(PlannerPolicyConfig)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown planner policy keys {sorted(unknown)}; allowed: {sorted(known)} (the search "
                             "settings go in `planner`: a PlannerConfig or a mapping of its fields)")
        self.config = replace(base, **overrides)
        cfg = self.config
        if world_model is None:
            world_model = load_world_model(cfg.checkpoint, cfg.device, cfg.ema)
        self.planner = make_planner(world_model, cfg.planner)
        self._timings: list[dict[str, float]] = []
        self._setup(world_model, seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        s = self._seed if seed is None else seed
        self.planner.reset(self.config.planner.seed if s is None else int(s))
        self._timings = []

    def decide(self, frames: np.ndarray, language: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plan from (K', H, W, 3) uint8 frames and a (512,) embedding -> actions (T, 7), imagined (T, H, W, 3)."""
        result = self.planner.plan(frames, language)
        self._timings.append(result.timing)
        return result.actions, result.imagined_frames

    def execute_steps(self, horizon: int) -> int:
        return min(self.config.planner.execute_steps, horizon)

    def episode_stats(self) -> dict[str, Any]:
        """Decision latencies (ms, p50 / p95) plus the mean propose / imagine / score split per decision."""
        stats = super().episode_stats()
        if self._timings:
            stats["plan_ms_mean"] = {k: float(np.mean([t[k] for t in self._timings])) for k in self._timings[0]}
        stats["method"] = self.config.planner.method
        return stats
