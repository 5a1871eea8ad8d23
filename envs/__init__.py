"""Simulated multi-step manipulation tasks (MuJoCo + Gymnasium), modelled on SimplerEnv's Google-robot tasks.

Importing this package registers ``Tabletop/<Task>-v0`` for every task in :data:`TASKS` and makes MuJoCo render
headless through EGL unless ``MUJOCO_GL`` is already set.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402

from envs.tasks import TASK_CLASSES  # noqa: E402

TASKS: tuple[str, ...] = tuple(TASK_CLASSES)
VERSION = "v0"


def env_id(task: str) -> str:
    """Full gymnasium id of a task given its short name (``PickCan``) or full id."""
    if task.startswith("Tabletop/"):
        return task
    if task not in TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return f"Tabletop/{task}-{VERSION}"


def task_name(task: str) -> str:
    """Short name (``PickCan``) of a task given its short name or full id (``Tabletop/PickCan-v0``)."""
    short = task.removeprefix("Tabletop/").rsplit("-", 1)[0] if task.startswith("Tabletop/") else task
    env_id(short)  # raises ValueError naming an unknown task
    return short


def _make_env(task: str, **kwargs):
    from envs.tabletop import TabletopEnv

    return TabletopEnv(TASK_CLASSES[task](), **kwargs)


def make(task: str, **kwargs) -> gym.Env:
    """``gym.make`` a task by short name or id; kwargs (``image_size``, ``render_mode``) go to the env."""
    return gym.make(env_id(task), **kwargs)


for _name, _cls in TASK_CLASSES.items():
    if env_id(_name) not in gym.registry:
        gym.register(id=env_id(_name), entry_point="envs:_make_env", kwargs={"task": _name},
                     max_episode_steps=_cls.step_limit)

__all__ = ["TASKS", "VERSION", "env_id", "make", "task_name"]
