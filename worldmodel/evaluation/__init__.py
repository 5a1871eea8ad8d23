"""Closed-loop evaluation in the simulated tasks."""

from worldmodel.evaluation.sim import EvalConfig, evaluate, run
from worldmodel.evaluation.stats import mcnemar_exact, wilson_interval

__all__ = ["EvalConfig", "evaluate", "mcnemar_exact", "run", "wilson_interval"]
