"""The ``planner`` policy: replan with the world model every ``execute_steps`` actions."""

from policies.planner.configuration_planner import PlannerPolicyConfig
from policies.planner.modeling_planner import PlannerPolicy

__all__ = ["PlannerPolicy", "PlannerPolicyConfig"]
