"""Planner settings (the ``planner`` block of ``configs/policy/planner.yaml``), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

METHODS = ("best_of_n", "cem", "mppi")


@dataclass(frozen=True)
class PlannerConfig:
    """How to search over action chunks.

    Attributes:
        method: ``best_of_n`` (score the policy's proposals, pick the best), ``cem`` (cross-entropy method with
            elites carried over) or ``mppi`` (exponentially weighted refit), both refining a Gaussian over action
            chunks that starts at the policy's proposals.
        num_candidates: N, candidates imagined per iteration (the batch of every model call).
        horizon: T, actions per chunk (and imagined frames).
        sampling_steps: flow-sampler steps of every ``propose`` / ``imagine`` call (2–8 for planning).
        iterations: refinement iterations after the proposals (``cem`` / ``mppi``; ignored by ``best_of_n``).
        elites: E, candidates kept by ``cem`` per iteration (carried into the next population with their costs).
        temperature: ``mppi`` weights ``softmax(-(cost - min cost) / (temperature · std of the costs))``: in
            units of the population's cost spread, so it does not depend on the cost's scale.
        init_std: floor of the Gaussian's std, as a fraction of each action dim's scale (keeps the search open
            when the proposals agree).
        reimagine: re-imagine the proposals with the ``dynamics`` verb (docs/architecture.md, "Planning")
            instead of scoring the frames the ``policy`` verb imagined jointly with them (cheaper, same model).
        execute_steps: actions of a plan the ``planner`` policy executes before replanning (1..horizon).
        progress_weight: weight of the predicted task progress at the end of the imagined horizon (a reward).
        goal_weight: weight of the distance between the last imagined frame and the goal frame in the model's
            own features (a cost; only when a goal frame is given).
        smoothness_weight: weight of the mean squared change between consecutive normalised actions (a cost).
        seed: seed of the planner's generator (proposal noise, Gaussian samples).
    """

    method: str = "best_of_n"
    num_candidates: int = 16
    horizon: int = 4
    sampling_steps: int = 4
    iterations: int = 2
    elites: int = 4
    temperature: float = 0.5
    init_std: float = 0.1
    reimagine: bool = True
    execute_steps: int = 2
    progress_weight: float = 1.0
    goal_weight: float = 0.0
    smoothness_weight: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"planner.method must be one of {METHODS}, got {self.method!r}")
        for name in ("num_candidates", "horizon", "sampling_steps", "elites", "execute_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"planner.{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ValueError(f"planner.iterations must be >= 0, got {self.iterations}")
        if self.method == "cem" and not self.elites < self.num_candidates:
            raise ValueError(f"planner.elites must be in [1, num_candidates - 1] = [1, {self.num_candidates - 1}] "
                             f"for cem, got {self.elites}")
        if self.method == "mppi" and self.num_candidates < 2:
            raise ValueError(f"planner.num_candidates must be >= 2 for mppi, got {self.num_candidates}")
        if not self.temperature > 0:
            raise ValueError(f"planner.temperature must be > 0, got {self.temperature}")
        if self.init_std < 0:
            raise ValueError(f"planner.init_std must be >= 0, got {self.init_std}")
        if self.execute_steps > self.horizon:
            raise ValueError(f"planner.execute_steps must be in [1, horizon={self.horizon}], got {self.execute_steps}")
        for name in ("progress_weight", "goal_weight", "smoothness_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"planner.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PlannerConfig:
        """Build from a plain mapping (e.g. a hydra node); unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown planner config keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**values)
