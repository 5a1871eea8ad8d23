"""Policies: the registry, the scripted experts on every task, the random baseline."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from policies import available_policies, make_policy
from policies.scripted import ScriptedConfig


def rollout(task: str, seed: int, policy_name: str = "scripted", **kwargs) -> tuple[dict, list[np.ndarray]]:
    env = envs.make(task, image_size=(32, 40))
    policy = make_policy(policy_name, env=env, **kwargs)
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    actions, done = [], False
    while not done:
        action = policy.select_action(obs)
        assert action.shape == (7,) and action.dtype == np.float32
        assert env.action_space.contains(action)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info, actions


@pytest.mark.parametrize("task", envs.TASKS)
@pytest.mark.parametrize("seed", [11, 12])
def test_scripted_expert_succeeds(task, seed):
    info, _ = rollout(task, seed)
    assert info["is_success"], info
    assert info["stages_completed"] == info["num_stages"]


def test_noisy_expert_differs_from_clean_and_is_seeded():
    _, clean = rollout("PickCan", 3)
    _, noisy_a = rollout("PickCan", 3, noise=0.3)
    _, noisy_b = rollout("PickCan", 3, noise=0.3)
    assert len(noisy_a) == len(noisy_b) and all(np.array_equal(a, b) for a, b in zip(noisy_a, noisy_b, strict=True))
    n = min(len(clean), len(noisy_a))
    assert not np.allclose(np.stack(clean[:n]), np.stack(noisy_a[:n]))


def test_random_policy_is_seeded_and_fails_the_task():
    info_a, acts_a = rollout("OpenDrawer", 0, "random")
    _, acts_b = rollout("OpenDrawer", 0, "random")
    assert np.array_equal(np.stack(acts_a), np.stack(acts_b))
    assert not info_a["is_success"]


def test_registry_and_config_validation():
    assert {"scripted", "random"} <= set(available_policies())
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("telepathy", env=None)
    with pytest.raises(ValueError, match="noise"):
        ScriptedConfig(noise=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        ScriptedConfig(tolerance=0.0)
