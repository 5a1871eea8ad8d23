"""Simulated multi-step manipulation tasks (MuJoCo + Gymnasium), modelled on SimplerEnv's Google-robot tasks.

Importing this package registers ``Tabletop/<Task>-v0`` for every task in :data:`TASKS` and makes MuJoCo render
headless through EGL unless ``MUJOCO_GL`` is already set. :func:`get_state` / :func:`set_state` snapshot and restore
a made env (wrappers included) for planners that try actions in a copy of the simulator.
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


def get_state(env: gym.Env):
    """Snapshot of a (possibly wrapped) tabletop env: :meth:`envs.tabletop.TabletopEnv.get_state`."""
    return env.unwrapped.get_state()


def set_state(env: gym.Env, state) -> None:
    """Restore a snapshot into a (possibly wrapped) tabletop env of the same task.

    Besides :meth:`envs.tabletop.TabletopEnv.set_state`, this sets the ``TimeLimit`` wrapper's step count to the
    snapshot's. An env that was never reset is reset first (the wrappers require it; the snapshot then overwrites
    everything the reset drew), so ``step`` may follow directly.
    """
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, gym.wrappers.OrderEnforcing) and not layer.has_reset:
            env.reset()
        layer = layer.env
    env.unwrapped.set_state(state)
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, gym.wrappers.TimeLimit):
            layer._elapsed_steps = int(state.step_count)
        layer = layer.env


for _name, _cls in TASK_CLASSES.items():
    if env_id(_name) not in gym.registry:
        gym.register(id=env_id(_name), entry_point="envs:_make_env", kwargs={"task": _name},
                     max_episode_steps=_cls.step_limit)

__all__ = ["TASKS", "VERSION", "env_id", "get_state", "make", "set_state", "task_name"]
