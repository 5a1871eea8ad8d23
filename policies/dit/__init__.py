"""The ``dit`` policy: sample the world model's ``policy`` verb and execute it (the Self-Flow paper's setup)."""

from policies.dit.configuration_dit import DiTPolicyConfig
from policies.dit.modeling_dit import DiTPolicy, load_world_model

__all__ = ["DiTPolicy", "DiTPolicyConfig", "load_world_model"]
