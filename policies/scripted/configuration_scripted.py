"""Configuration of the scripted experts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScriptedConfig:
    """Scripted-expert settings.

    Attributes:
        noise: diversity knob in [0, 1]. Gaussian noise of std ``noise × 0.25 × bound`` is added to the arm
            action, and with probability ``noise`` each grasp is deliberately let go and retried. 0 gives the
            clean expert; the documented default for pretraining data, 0.1, still succeeds ≥ 80 %.
        tolerance: distance (m) at which a waypoint counts as reached.
        max_phase_steps: steps after which a stuck phase is abandoned and the sub-task retried.
    """

    noise: float = 0.0
    tolerance: float = 0.012
    max_phase_steps: int = 25

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"ScriptedConfig.noise must be in [0, 1], got {self.noise}")
        if not 0.0 < self.tolerance < 0.1:
            raise ValueError(f"ScriptedConfig.tolerance must be in (0, 0.1) metres, got {self.tolerance}")
        if self.max_phase_steps < 1:
            raise ValueError(f"ScriptedConfig.max_phase_steps must be >= 1, got {self.max_phase_steps}")
