"""Planning with the world model: imagine the futures of candidate action chunks, score, act
(docs/architecture.md, "Planning").

``make_planner(world_model, PlannerConfig(method="best_of_n" | "cem" | "mppi")).plan(frames, language, goal)``
returns a :class:`PlanResult`. The :class:`Planner` sees the model only through :class:`PlanFns` (propose,
imagine, cost); :func:`world_model_fns` builds them from a :class:`worldmodel.WorldModel`. The oracle ladder
(``PlannerConfig.scorer``) swaps in the true simulator's futures and progress (:mod:`worldmodel.planner.oracle`);
:mod:`worldmodel.planner.ranking` measures how well scores rank candidates against it.
"""

from worldmodel.planner.config import METHODS, SCORERS, PlannerConfig
from worldmodel.planner.oracle import SimulatorRollouts, ladder_fns
from worldmodel.planner.planner import CostFn, ImagineFn, PlanContext, PlanFns, Planner, PlanResult, ProposeFn
from worldmodel.planner.ranking import spearman
from worldmodel.planner.scoring import make_planner, world_model_fns

__all__ = [
    "METHODS",
    "SCORERS",
    "CostFn",
    "ImagineFn",
    "PlanContext",
    "PlanFns",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "ProposeFn",
    "SimulatorRollouts",
    "ladder_fns",
    "make_planner",
    "spearman",
    "world_model_fns",
]
