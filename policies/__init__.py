"""Policies for the tabletop envs, all with ``reset(seed)`` / ``select_action(obs)``.

``make_policy(name, env=..., **kwargs)`` builds one by name: ``scripted`` (privileged experts), ``random``,
``dit`` (the world model's own policy verb) and ``planner`` (search over the world model's imagined futures); the
last two take ``checkpoint=PATH``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies.base import Policy

_REGISTRY: dict[str, Callable[..., Policy]] = {}


def register_policy(name: str) -> Callable[[Callable[..., Policy]], Callable[..., Policy]]:
    """Decorator adding a policy factory to :func:`make_policy`."""

    def wrap(factory: Callable[..., Policy]) -> Callable[..., Policy]:
        _REGISTRY[name] = factory
        return factory

    return wrap


@register_policy("scripted")
def _scripted(env: Any, **kwargs: Any) -> Policy:
    from policies.scripted import ScriptedPolicy

    return ScriptedPolicy(env, **kwargs)


@register_policy("random")
def _random(env: Any, **kwargs: Any) -> Policy:
    from policies.random_policy import RandomPolicy

    return RandomPolicy(env, **kwargs)


@register_policy("dit")
def _dit(env: Any, **kwargs: Any) -> Policy:
    from policies.dit import DiTPolicy

    return DiTPolicy(env, **kwargs)


@register_policy("planner")
def _planner(env: Any, **kwargs: Any) -> Policy:
    from policies.planner import PlannerPolicy

    return PlannerPolicy(env, **kwargs)


def available_policies() -> tuple[str, ...]:
    """Names accepted by :func:`make_policy`."""
    return tuple(_REGISTRY)


def make_policy(name: str, env: Any = None, **kwargs: Any) -> Policy:
    """Build a policy by name.

    Args:
        name: one of :func:`available_policies`.
        env: the env the policy acts in.
        **kwargs: policy options (e.g. ``noise=0.1`` for ``scripted``, ``seed``).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown policy {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](env=env, **kwargs)


__all__ = ["Policy", "available_policies", "make_policy", "register_policy"]
