"""Scripted experts for every tabletop task (privileged state from ``env.unwrapped``)."""

from policies.scripted.configuration_scripted import ScriptedConfig
from policies.scripted.modeling_scripted import ScriptedPolicy

__all__ = ["ScriptedConfig", "ScriptedPolicy"]
