"""Networks (``nn.Module``s only): the video-action DiT, its configuration, presets and token layout.

Probability paths, losses and samplers live in :mod:`worldmodel.objectives`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from worldmodel.models.conditioning import Condition, as_condition
from worldmodel.models.config import PREDICTIONS, PRESETS, ModelConfig, get_config
from worldmodel.models.dit import DiTOutput, Projector, VideoActionDiT
from worldmodel.models.layout import (
    ACTION_VERBS,
    VERBS,
    TokenLayout,
    Tokens,
    VerbSampler,
    batch_generated_mask,
    demonstration_verbs,
    generated_mask,
    patchify,
    unpatchify,
)

__all__ = [
    "Condition",
    "as_condition",
    "ACTION_VERBS",
    "PREDICTIONS",
    "PRESETS",
    "VERBS",
    "DiTOutput",
    "ModelConfig",
    "Projector",
    "TokenLayout",
    "Tokens",
    "VerbSampler",
    "VideoActionDiT",
    "batch_generated_mask",
    "demonstration_verbs",
    "build_model",
    "count_parameters",
    "generated_mask",
    "get_config",
    "patchify",
    "unpatchify",
]


def _resolve(preset: str | ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    if isinstance(preset, ModelConfig):
        return replace(preset, **overrides)
    return get_config(preset, **overrides)


def build_model(preset: str | ModelConfig, **overrides: Any) -> VideoActionDiT:
    """Build a model from a preset name (``tiny``, ``demo``, ``S``, ``B``, ``L``, ``XL``) or a config.

    Example: ``build_model("S", depth=8, checkpointing=True)``.
    """
    return VideoActionDiT(_resolve(preset, overrides))


def count_parameters(preset: str | ModelConfig, **overrides: Any) -> int:
    """Number of parameters of a preset, counted on the meta device (allocates no weights)."""
    with torch.device("meta"):
        model = VideoActionDiT(_resolve(preset, overrides))
    return sum(p.numel() for p in model.parameters())
