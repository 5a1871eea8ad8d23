"""The interface every policy shares (LeRobot style): ``reset(seed)`` then ``select_action(obs)`` each step."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """A closed-loop controller for the tabletop envs."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (call after ``env.reset``)."""

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the next action, float32 (7,) in RT-1 units (see :mod:`envs.tabletop`)."""
