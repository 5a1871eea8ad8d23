"""Planning with the world model: imagine the futures of candidate action chunks, score, act
(docs/architecture.md, "Planning").

``make_planner(world_model, PlannerConfig(method="best_of_n" | "cem" | "mppi")).plan(frames, language, goal)``
returns a :class:`PlanResult`. The :class:`Planner` sees the model only through :class:`PlanFns` (propose,
imagine, cost); :func:`world_model_fns` builds them from a :class:`worldmodel.WorldModel`.
"""

from worldmodel.planner.config import METHODS, PlannerConfig
from worldmodel.planner.planner import CostFn, ImagineFn, PlanContext, PlanFns, Planner, PlanResult, ProposeFn
from worldmodel.planner.scoring import make_planner, world_model_fns

__all__ = [
    "METHODS",
    "CostFn",
    "ImagineFn",
    "PlanContext",
    "PlanFns",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "ProposeFn",
    "make_planner",
    "world_model_fns",
]
