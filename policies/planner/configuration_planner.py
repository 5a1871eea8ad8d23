"""Configuration of the ``planner`` policy: model-predictive control with the world model."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.dit.configuration_dit import DEVICES, DiTPolicyConfig
from worldmodel.planner import PlannerConfig


@dataclass
class PlannerPolicyConfig:
    """Settings of :class:`~policies.planner.PlannerPolicy` (``configs/policy/planner.yaml``).

    The search settings are a :class:`worldmodel.planner.PlannerConfig`; in hydra they are their own group,
    ``planner`` (``planner=cem planner.num_candidates=32``), which ``worldmodel eval sim`` hands to this policy.

    Attributes:
        checkpoint: a training checkpoint or run directory.
        imagine_checkpoint: a second world model (checkpoint or run directory) whose ``dynamics`` verb re-imagines
            the proposals and whose progress head scores them, e.g. a dynamics-trained model beside the policy
            (None: ``checkpoint`` does everything; needs ``planner.reimagine``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        ema: use the EMA weights.
        num_threads: torch CPU threads; 1 avoids OpenMP contention on shared CPUs (0: leave torch's setting).
        gripper_threshold, condition_on_observation, use_state: as :class:`~policies.dit.DiTPolicyConfig`.
        planner: the search (method, candidates, horizon, steps, weights, ``execute_steps`` ...).
    """

    checkpoint: str | None = None
    imagine_checkpoint: str | None = None
    device: str = "auto"
    ema: bool = True
    num_threads: int = 1
    gripper_threshold: float = DiTPolicyConfig.gripper_threshold  # one default, the dit policy's
    condition_on_observation: bool = DiTPolicyConfig.condition_on_observation
    use_state: bool = DiTPolicyConfig.use_state
    planner: PlannerConfig = field(default_factory=PlannerConfig)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"policy.device must be one of {DEVICES}, got {self.device!r}")
        if not 0.0 <= self.gripper_threshold < 1.0:
            raise ValueError(f"policy.gripper_threshold must be in [0, 1), got {self.gripper_threshold}")
        if self.num_threads < 0:
            raise ValueError(f"policy.num_threads must be >= 0, got {self.num_threads}")
        if isinstance(self.planner, dict):
            self.planner = PlannerConfig.from_dict(self.planner)
