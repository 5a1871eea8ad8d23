"""Probability path, time samplers, flow-matching and Self-Flow losses, EMA and samplers (kept out of
the network)."""

from worldmodel.objectives.config import TIME_SAMPLERS, ObjectiveConfig
from worldmodel.objectives.ema import EMA
from worldmodel.objectives.losses import (
    FlowBatch,
    LossOutput,
    SelfFlowInputs,
    flow_matching_loss,
    selfflow_inputs,
    selfflow_loss,
    training_loss,
)
from worldmodel.objectives.path import (
    TimeSampler,
    as_velocity,
    interpolate,
    randn_like_tokens,
    resolution_shift,
    shift_time,
    velocity_target,
    x_to_velocity,
)
from worldmodel.objectives.sampling import (
    METHODS,
    GenerationContext,
    GenerationResult,
    VelocityFn,
    generate,
    model_velocity_fn,
    sample,
    time_grid,
)

__all__ = [
    "EMA",
    "METHODS",
    "TIME_SAMPLERS",
    "FlowBatch",
    "GenerationContext",
    "GenerationResult",
    "LossOutput",
    "ObjectiveConfig",
    "SelfFlowInputs",
    "TimeSampler",
    "VelocityFn",
    "as_velocity",
    "flow_matching_loss",
    "generate",
    "interpolate",
    "model_velocity_fn",
    "randn_like_tokens",
    "resolution_shift",
    "sample",
    "selfflow_inputs",
    "selfflow_loss",
    "shift_time",
    "time_grid",
    "training_loss",
    "velocity_target",
    "x_to_velocity",
]
