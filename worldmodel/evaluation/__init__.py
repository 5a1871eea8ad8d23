"""Closed-loop evaluation in the simulated tasks."""

from worldmodel.evaluation.sim import EvalConfig, evaluate, run
from worldmodel.evaluation.stats import wilson_interval

__all__ = ["EvalConfig", "evaluate", "run", "wilson_interval"]
