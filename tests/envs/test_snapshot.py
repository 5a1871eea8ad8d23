"""Simulator snapshots: ``get_state`` / ``set_state`` make stepping on from a restored state bit-identical."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import envs
from policies import make_policy

SMALL = (24, 32)
WARMUP, HORIZON = 6, 5


def make(task: str, **kwargs):
    return envs.make(task, image_size=kwargs.pop("image_size", SMALL), **kwargs)


def warm_up(env, seed: int, steps: int = WARMUP) -> None:
    """Reset and take a few expert steps, so that the arm is moving and the gripper command is non-trivial."""
    env.reset(seed=seed)
    policy = make_policy("scripted", env=env)
    policy.reset(seed=seed)
    obs = None
    for _ in range(steps):
        obs, *_ = env.step(policy.select_action(obs))


def actions(seed: int, n: int = HORIZON) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acts = rng.uniform(envs.tabletop.ACTION_LOW, envs.tabletop.ACTION_HIGH, size=(n, 7)) * 0.6
    acts[:, 6] = rng.choice([-1.0, 0.0, 1.0], size=n)
    return acts.astype(np.float32)


def play(env, acts) -> list:
    out = []
    for a in acts:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info, env.unwrapped.np_random.random()))
    return out


def assert_identical(run_a: list, run_b: list) -> None:
    assert len(run_a) == len(run_b)
    for (obs_a, *rest_a), (obs_b, *rest_b) in zip(run_a, run_b, strict=True):
        assert obs_a.keys() == obs_b.keys()
        for key in obs_a:
            if isinstance(obs_a[key], np.ndarray):
                assert obs_a[key].dtype == obs_b[key].dtype and np.array_equal(obs_a[key], obs_b[key]), key
            else:
                assert obs_a[key] == obs_b[key], key
        assert rest_a == rest_b  # reward, terminated, truncated, info (with progress), next RNG draw


@pytest.mark.parametrize("task", envs.TASKS)
def test_restore_into_the_same_env_is_bit_identical(task):
    env = make(task)
    warm_up(env, seed=7)
    state = envs.get_state(env)
    acts = actions(1)
    first = play(env, acts)
    envs.set_state(env, state)
    assert_identical(first, play(env, acts))
    # The snapshot is not aliased with the live env: restoring it twice gives the same run again.
    envs.set_state(env, state)
    assert_identical(first, play(env, acts))


@pytest.mark.parametrize("task", envs.TASKS)
def test_restore_into_another_env_is_bit_identical(task):
    env = make(task)
    warm_up(env, seed=8)
    state = copy.deepcopy(envs.get_state(env))
    acts = actions(2)
    first = play(env, acts)
    other = make(task)
    other.reset(seed=8)
    envs.set_state(other, pickle.loads(pickle.dumps(state)))
    assert_identical(first, play(other, acts))


def test_restore_into_an_env_reset_with_another_seed():
    env = make("MoveNear")
    warm_up(env, seed=3)
    state = envs.get_state(env)
    acts = actions(3)
    first = play(env, acts)
    other = make("MoveNear")
    other.reset(seed=99)  # another scene and instruction: the snapshot brings its own
    envs.set_state(other, state)
    assert other.unwrapped.task.params == env.unwrapped.task.params
    assert_identical(first, play(other, acts))


def test_restore_after_a_teleport_and_mid_grasp():
    # After set_drawer_opening the derived quantities are current (mj_forward), not one sub-step behind.
    env = make("StoreApple")
    env.reset(seed=4)
    u = env.unwrapped
    u.set_drawer_opening(u.task.params["drawer"], 0.18)
    assert u.get_state().pre_physics is None
    state = envs.get_state(env)
    acts = actions(4)
    first = play(env, acts)
    envs.set_state(env, state)
    assert_identical(first, play(env, acts))
    # With the can held: contacts between fingers and object must be restored too.
    env = make("PickCan")
    warm_up(env, seed=11, steps=20)
    info = env.unwrapped.info()
    assert info["stages_completed"] >= 1, info
    state = envs.get_state(env)
    acts = actions(5)
    first = play(env, acts)
    envs.set_state(env, state)
    assert env.unwrapped.info() == info
    assert_identical(first, play(env, acts))


def test_time_limit_follows_the_snapshot():
    env = make("MoveNear")
    env.reset(seed=0)
    zero = np.zeros(7, dtype=np.float32)
    for _ in range(75):
        env.step(zero)
    state = envs.get_state(env)
    assert state.step_count == 75
    truncations = [env.step(zero)[3] for _ in range(5)]
    assert truncations == [False] * 4 + [True]
    fresh = make("MoveNear")  # never reset: set_state makes it steppable
    envs.set_state(fresh, state)
    assert [fresh.step(zero)[3] for _ in range(5)] == truncations
    assert fresh.unwrapped.info()["step"] == 80


def test_snapshot_of_another_task_is_refused():
    env = make("PickCan")
    env.reset(seed=0)
    other = make("MoveNear")
    other.reset(seed=0)
    with pytest.raises(ValueError, match="task"):
        other.unwrapped.set_state(env.unwrapped.get_state())


def test_snapshot_after_raw_data_edits_is_refused():
    env = make("PickCan")
    env.reset(seed=0)
    env.step(np.zeros(7, dtype=np.float32))
    env.unwrapped.data.qpos[0] += 0.01  # bypasses the env's setters: derived quantities are stale
    state = envs.get_state(env)
    with pytest.raises(ValueError, match="reproduce"):
        envs.set_state(env, state)
