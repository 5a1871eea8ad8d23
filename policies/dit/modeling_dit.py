"""The ``dit`` policy: the world model's ``policy`` verb, one sample per decision, no search.

It keeps the last K camera frames as the model's context, samples an action chunk (with the future the model
imagines along with it), executes ``execute_steps`` of its actions, and samples again. The class is also the base
of the ``planner`` policy, which replaces :meth:`DiTPolicy.decide` by a search.

For videos, :meth:`DiTPolicy.video_frame` shows the real camera beside the frame the model imagined *for that
moment* when it chose the previous action (black before the first decision), so prediction and reality can be
compared frame by frame. :meth:`DiTPolicy.episode_stats` reports decision latencies.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from policies.dit.configuration_dit import DiTPolicyConfig

_WORLD_MODELS: dict[tuple[str, str, bool], Any] = {}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_world_model(checkpoint: str | None, device: str = "auto", ema: bool = True) -> Any:
    """A :class:`worldmodel.WorldModel` from a checkpoint, cached per process (the eval harness builds one policy
    per episode).

    Raises:
        ValueError: no checkpoint was given.
    """
    if not checkpoint:
        raise ValueError("policy.checkpoint is required: worldmodel eval sim policy=<dit|planner> checkpoint=PATH")
    from worldmodel.io import resolve_checkpoint
    from worldmodel.world_model import WorldModel

    dev = resolve_device(device)
    key = (str(resolve_checkpoint(checkpoint).resolve()), dev, bool(ema))
    if key not in _WORLD_MODELS:
        _WORLD_MODELS[key] = WorldModel.from_checkpoint(checkpoint, device=dev, ema=ema)
    return _WORLD_MODELS[key]


def threshold_gripper(action: np.ndarray, threshold: float) -> np.ndarray:
    """The executed gripper command: +1 above ``threshold``, -1 below ``-threshold``, 0 (hold) between; the
    raw value when ``threshold`` is 0. Action (7,) in RT-1 units; returns a copy."""
    out = np.array(action, np.float32, copy=True)
    if threshold > 0:
        g = float(out[6])
        out[6] = 1.0 if g > threshold else -1.0 if g < -threshold else 0.0
    return out


def latency_stats(latencies_ms: list[float]) -> dict[str, Any]:
    """Per-episode decision latencies: the list (ms) with its p50 / p95 (None when no decision was taken)."""
    arr = np.asarray(latencies_ms, dtype=np.float64)
    pct = (lambda q: float(np.percentile(arr, q))) if arr.size else (lambda q: None)
    return {"decision_ms": [round(float(x), 3) for x in arr], "decision_ms_p50": pct(50),
            "decision_ms_p95": pct(95), "decisions": int(arr.size)}


class DiTPolicy:
    """Executes the world model's own action samples.

    Args:
        env: the env (unused: the policy sees observations only; kept for the shared factory signature).
        config: :class:`DiTPolicyConfig`; keyword overrides (``checkpoint=...``) are accepted too.
        world_model: an already built :class:`worldmodel.WorldModel` (instead of ``config.checkpoint``).
        seed: default seed of the sampling noise.
    """

    def __init__(self, env: Any = None, config: DiTPolicyConfig | None = None, world_model: Any = None,
                 seed: int | None = None, **overrides: Any) -> None:
        del env
        base = asdict(config or DiTPolicyConfig())
        unknown = set(overrides) - set(base)
        if unknown:
            raise ValueError(f"unknown dit policy keys {sorted(unknown)}; allowed: {sorted(base)}")
        self.config = DiTPolicyConfig(**{**base, **overrides})
        self._setup(world_model, seed)

    def _setup(self, world_model: Any, seed: int | None) -> None:
        cfg = self.config
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        self.world_model = world_model if world_model is not None else \
            load_world_model(cfg.checkpoint, cfg.device, cfg.ema)
        self._seed = seed
        self.generator = torch.Generator()
        self.reset(seed)

    # ------------------------------------------------------------------------------------ policy interface
    def reset(self, seed: int | None = None) -> None:
        """Start an episode: clear the context and the action queue, re-seed the sampling noise."""
        s = self._seed if seed is None else seed
        self.generator.manual_seed(0 if s is None else int(s))
        self._context: deque[np.ndarray] = deque(maxlen=self.world_model.context_frames)
        self._states: deque[np.ndarray] = deque(maxlen=self.world_model.context_frames)
        self._queue: list[tuple[np.ndarray, np.ndarray]] = []
        self._predicted: np.ndarray | None = None
        self._latencies: list[float] = []

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """Next action, float32 (7,) in RT-1 units; decides a new chunk when the previous one is used up."""
        self._context.append(np.asarray(obs["image"]))
        if "base_pose_tool_reached" in obs and "gripper_closed" in obs:
            self._states.append(np.concatenate([np.asarray(obs["base_pose_tool_reached"], np.float32).reshape(7),
                                                np.asarray(obs["gripper_closed"], np.float32).reshape(1)]))
        if not self._queue:
            start = time.perf_counter()
            actions, imagined = self.decide(np.stack(self._context), self.condition(obs))
            self._latencies.append(1e3 * (time.perf_counter() - start))
            n = self.execute_steps(len(actions))
            self._queue = list(zip(actions[:n], imagined[:n], strict=True))
        action, self._predicted = self._queue.pop(0)
        low, high = self.world_model.action_low, self.world_model.action_high
        action = np.clip(np.asarray(action, np.float32), low, high).astype(np.float32)
        return threshold_gripper(action, self.config.gripper_threshold)

    def condition(self, obs: dict[str, Any]) -> Any:
        """What the model is conditioned on: the sentence embedding, and with ``condition_on_observation`` the
        instruction text and the robot state of the context frames (see ``WorldModel.embed_language``)."""
        if not self.config.condition_on_observation:
            return obs["natural_language_embedding"]
        cond: dict[str, Any] = {"natural_language_embedding": obs["natural_language_embedding"]}
        if "natural_language_instruction" in obs:
            cond["natural_language_instruction"] = obs["natural_language_instruction"]
        if self._states and self.config.use_state:
            states = np.stack(self._states)  # (K', 8), oldest first
            cond["base_pose_tool_reached"], cond["gripper_closed"] = states[:, :7], states[:, 7:]
        return cond

    def decide(self, frames: np.ndarray, language: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One decision.

        Args:
            frames: (K', H, W, 3) uint8, the latest camera frames (K' <= K).
            language: what the model is conditioned on (see :meth:`condition`).

        Returns:
            actions (T, 7) in RT-1 units and the imagined frames (T, H, W, 3) uint8 after each of them.
        """
        cfg = self.config
        prop = self.world_model.propose(frames, language, n=1, steps=cfg.sampling_steps, horizon=cfg.horizon,
                                        generator=self.generator, guidance=cfg.guidance, temperature=cfg.temperature)
        return prop.actions[0], prop.frames[0]

    def execute_steps(self, horizon: int) -> int:
        """Actions of a T-step chunk to execute before deciding again."""
        return horizon if self.config.execute_steps is None else min(self.config.execute_steps, horizon)

    # ----------------------------------------------------------------------------------------- eval hooks
    def video_frame(self, obs: dict[str, Any]) -> np.ndarray:
        """Real camera | the frame the model imagined for this moment, side by side: (H, 2W, 3) uint8."""
        real = np.asarray(obs["image"])
        imagined = self._predicted if self._predicted is not None else np.zeros_like(real)
        return np.concatenate([real, imagined], axis=1)

    def episode_stats(self) -> dict[str, Any]:
        """Per-episode extras for ``eval_info.json``: decision latencies (ms) and their p50 / p95."""
        return latency_stats(self._latencies)
