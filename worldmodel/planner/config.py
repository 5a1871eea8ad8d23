"""Planner settings (the ``planner`` block of ``configs/policy/planner.yaml``), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

METHODS = ("best_of_n", "cem", "mppi")
# The oracle ladder (docs/planner.md, "Where planning loses"): who ranks the same proposals.
SCORERS = ("none", "oracle", "learned_on_true", "learned")


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
        proposal_temperature: scale of the proposals' initial action noise (``policy.temperature`` of the
            planner: 1 samples the learned distribution, < 1 draws candidates closer to the most likely chunk).
        init_std: floor of the Gaussian's std, as a fraction of each action dim's scale (keeps the search open
            when the proposals agree).
        reimagine: re-imagine the proposals with the ``dynamics`` verb (docs/architecture.md, "Planning")
            instead of scoring the frames the ``policy`` verb imagined jointly with them (cheaper, same model).
        shared_noise: imagine every candidate from the same noise (common random numbers), so that their
            futures differ only by their actions, not by the sampler's draws (twelfth session: with a model whose
            imagination follows the action, the correlation of imagined and true candidate differences rises from
            +0.11 to +0.28; docs/experiments.md). Applies to re-imagining (``imagine``), not to the proposals,
            whose actions must differ.
        execute_steps: actions of a plan the ``planner`` policy executes before replanning (1..horizon).
        progress_weight: weight of the predicted task progress at the end of the imagined horizon (a reward).
        goal_weight: weight of the distance between the last imagined frame and the goal frame in the model's
            own features (a cost; only when a goal frame is given).
        smoothness_weight: weight of the mean squared change between consecutive normalised actions (a cost).
        seed: seed of the planner's generator (proposal noise, Gaussian samples).
        scorer: who ranks the candidates, a rung of the oracle ladder: ``learned`` (the world model's imagined
            futures, scored by the learned scorer: the planner), ``learned_on_true`` (the true simulator's futures,
            scored by the learned scorer: isolates the scorer), ``oracle`` (the true simulator's futures, scored by
            the true task progress: the upper bound of the search over these proposals) or ``none`` (no scoring:
            the first proposal, i.e. the policy verb alone; ``best_of_n`` only). ``oracle`` and
            ``learned_on_true`` execute every candidate in a restored snapshot of the live env.
        oracle_hold_steps: the oracle reads the true progress this many zero-motion steps (arm still, gripper
            held) after the chunk: judges a chunk at a longer horizon (does a lifted object stay up?).
        diagnostics: per decision, also run every final candidate in the true simulator and record how the
            scores rank them against the true progress (Spearman), whether the chosen one is the true best, and
            the PSNR / SSIM of the imagined futures against the true ones (costs N simulator rollouts per
            decision unless ``scorer`` already ran them).
    """

    method: str = "best_of_n"
    num_candidates: int = 16
    horizon: int = 4
    sampling_steps: int = 4
    iterations: int = 2
    elites: int = 4
    temperature: float = 0.5
    proposal_temperature: float = 1.0
    init_std: float = 0.1
    reimagine: bool = True
    shared_noise: bool = True
    execute_steps: int = 2
    progress_weight: float = 1.0
    goal_weight: float = 0.0
    smoothness_weight: float = 0.01
    seed: int = 0
    scorer: str = "learned"
    oracle_hold_steps: int = 0
    diagnostics: bool = False

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
        if self.proposal_temperature < 0:
            raise ValueError(f"planner.proposal_temperature must be >= 0, got {self.proposal_temperature}")
        if self.init_std < 0:
            raise ValueError(f"planner.init_std must be >= 0, got {self.init_std}")
        if self.execute_steps > self.horizon:
            raise ValueError(f"planner.execute_steps must be in [1, horizon={self.horizon}], got {self.execute_steps}")
        if self.scorer not in SCORERS:
            raise ValueError(f"planner.scorer must be one of {SCORERS}, got {self.scorer!r}")
        if self.scorer == "none" and self.method != "best_of_n":
            raise ValueError(f"planner.scorer=none executes the first proposal: it needs method=best_of_n, "
                             f"got {self.method!r}")
        if self.oracle_hold_steps < 0:
            raise ValueError(f"planner.oracle_hold_steps must be >= 0, got {self.oracle_hold_steps}")
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
