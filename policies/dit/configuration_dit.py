"""Configuration of the ``dit`` policy: the world model's own ``policy`` verb, executed without search."""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DiTPolicyConfig:
    """Settings of :class:`~policies.dit.DiTPolicy` (``configs/policy/dit.yaml``).

    Attributes:
        checkpoint: a training checkpoint or run directory (``worldmodel eval sim ... checkpoint=PATH``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        horizon: actions sampled per decision (None: the model's trained chunk F).
        execute_steps: actions executed before sampling again (None: the whole chunk).
        sampling_steps: flow-sampler steps per decision.
        ema: use the EMA weights.
        num_threads: torch CPU threads; 1 avoids OpenMP contention on shared CPUs (0: leave torch's setting).
        guidance: classifier-free guidance scale on the instruction (1: off; needs a model trained with
            ``objective.language_dropout``).
        temperature: scale of the sampled actions' initial noise (1: the learned distribution; < 1 concentrates
            each decision's chunk towards the most likely one).
        gripper_threshold: the env integrates the gripper command (``g <- clip(g + a, 0, 1)``), so small sampled
            values near 0 would make it drift and chatter. Executed: +1 when the sampled value is above the
            threshold, -1 below minus it, 0 (hold) between; 0 executes the raw sample.
        condition_on_observation: give the model the instruction text and robot state from the observation
            (its instruction and state tokens, when it has them); False: the sentence embedding only.
        use_state: with ``condition_on_observation``, also give the robot state; False acts from the images and
            the instruction alone (for a model trained with ``objective.state_dropout``).
    """

    checkpoint: str | None = None
    device: str = "auto"
    horizon: int | None = None
    execute_steps: int | None = None
    sampling_steps: int = 8
    ema: bool = True
    num_threads: int = 1
    guidance: float = 1.0
    temperature: float = 1.0
    gripper_threshold: float = 0.5
    condition_on_observation: bool = True
    use_state: bool = True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"policy.device must be one of {DEVICES}, got {self.device!r}")
        for name in ("horizon", "execute_steps"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"policy.{name} must be >= 1 or null, got {value}")
        if self.horizon is not None and self.execute_steps is not None and self.execute_steps > self.horizon:
            raise ValueError(f"policy.execute_steps must be in [1, horizon={self.horizon}], got {self.execute_steps}")
        if self.sampling_steps < 1:
            raise ValueError(f"policy.sampling_steps must be >= 1, got {self.sampling_steps}")
        if not 0.0 <= self.gripper_threshold < 1.0:
            raise ValueError(f"policy.gripper_threshold must be in [0, 1), got {self.gripper_threshold}")
        if self.guidance < 0:
            raise ValueError(f"policy.guidance must be >= 0, got {self.guidance}")
        if self.temperature < 0:
            raise ValueError(f"policy.temperature must be >= 0, got {self.temperature}")
        if self.num_threads < 0:
            raise ValueError(f"policy.num_threads must be >= 0, got {self.num_threads}")
