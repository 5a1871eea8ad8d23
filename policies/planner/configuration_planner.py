"""Configuration of the ``planner`` policy: model-predictive control with the world model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from policies.dit.configuration_dit import DEVICES
from worldmodel.planner import PlannerConfig


@dataclass
class PlannerPolicyConfig:
    """Settings of :class:`~policies.planner.PlannerPolicy` (``configs/policy/planner.yaml``).

    The search settings are a :class:`worldmodel.planner.PlannerConfig`; in hydra they sit flat beside the
    policy's own keys (``policy.method=cem policy.num_candidates=32``), see :meth:`from_flat`.

    Attributes:
        checkpoint: a training checkpoint or run directory.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        ema: use the EMA weights.
        num_threads: torch CPU threads (0: leave torch's setting).
        gripper_threshold, condition_on_observation: as :class:`~policies.dit.DiTPolicyConfig`.
        planner: the search (method, candidates, horizon, steps, weights, ``execute_steps`` ...).
    """

    checkpoint: str | None = None
    device: str = "auto"
    ema: bool = True
    num_threads: int = 0
    gripper_threshold: float = 0.5
    condition_on_observation: bool = True
    planner: PlannerConfig = field(default_factory=PlannerConfig)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"policy.device must be one of {DEVICES}, got {self.device!r}")
        if self.num_threads < 0:
            raise ValueError(f"policy.num_threads must be >= 0, got {self.num_threads}")
        if isinstance(self.planner, dict):
            self.planner = PlannerConfig.from_dict(self.planner)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> PlannerPolicyConfig:
        """Build from one flat mapping: the policy's own keys plus any :class:`PlannerConfig` field."""
        own = {f.name for f in fields(cls)} - {"planner"}
        planner_keys = {f.name for f in fields(PlannerConfig)}
        unknown = set(values) - own - planner_keys - {"planner"}
        if unknown:
            raise ValueError(f"unknown planner policy keys {sorted(unknown)}; allowed: {sorted(own | planner_keys)}")
        nested = dict(values.get("planner") or {})
        nested.update({k: v for k, v in values.items() if k in planner_keys})
        return cls(**{k: v for k, v in values.items() if k in own}, planner=PlannerConfig.from_dict(nested))

    def to_flat(self) -> dict[str, Any]:
        """Inverse of :meth:`from_flat`."""
        out = {k: v for k, v in asdict(self).items() if k != "planner"}
        return {**out, **asdict(self.planner)}
