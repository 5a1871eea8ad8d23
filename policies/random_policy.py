"""Uniformly random actions within the action space: a lower bound for every evaluation table."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class RandomPolicy:
    """Samples actions uniformly from ``env.action_space`` with its own seeded RNG.

    Args:
        env: the env whose action space bounds the samples.
        seed: default seed for :meth:`reset`.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        self.space = env.action_space
        self._seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        del obs
        return self.rng.uniform(self.space.low, self.space.high).astype(np.float32)
