"""The tabletop envs: gymnasium compliance, determinism, stage predicates, bad actions, instability."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.tasks import CLOSED_THRESHOLD, OPEN_THRESHOLD

SMALL = (32, 40)
STEP_LIMITS = {"PickCan": 80, "MoveNear": 80, "OpenDrawer": 113, "CloseDrawer": 113,
               "OpenDrawerPlaceApple": 200, "StoreApple": 300}


def make(task: str, **kwargs) -> gym.Env:
    return envs.make(task, image_size=kwargs.pop("image_size", SMALL), **kwargs)


def test_registry_has_every_task_with_its_step_limit():
    assert set(envs.TASKS) == set(STEP_LIMITS)
    assert envs.task_name("Tabletop/StoreApple-v0") == envs.task_name("StoreApple") == "StoreApple"
    with pytest.raises(ValueError, match="unknown task"):
        envs.task_name("Tabletop/Juggle-v0")
    for task, limit in STEP_LIMITS.items():
        assert gym.spec(f"Tabletop/{task}-v0").max_episode_steps == limit


@pytest.mark.parametrize("task", envs.TASKS)
def test_check_env_passes(task):
    env = make(task, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    frame = env.unwrapped.render()
    assert frame.shape == (*SMALL, 3) and frame.dtype == np.uint8
    env.close()


@pytest.mark.parametrize("task", envs.TASKS)
def test_observation_matches_rt1_keys_and_space(task):
    env = make(task, image_size=(48, 64))
    obs, info = env.reset(seed=5)
    assert set(obs) == {"image", "natural_language_instruction", "natural_language_embedding",
                        "base_pose_tool_reached", "gripper_closed"}
    assert obs["image"].shape == (48, 64, 3)
    assert env.observation_space.contains(obs)
    assert info["num_stages"] == len(info["stage_names"]) and info["stages_completed"] == 0
    assert not info["is_success"]
    quat = obs["base_pose_tool_reached"][3:]
    assert np.isclose(np.linalg.norm(quat), 1.0, atol=1e-4)


def test_image_shows_the_scene():
    env = make("PickCan", image_size=(64, 80))
    obs, _ = env.reset(seed=0)
    img = obs["image"].astype(float)
    assert img.std() > 20  # not a blank frame
    # The coke can is red: some clearly red pixels are visible.
    red = (img[..., 0] > 120) & (img[..., 1] < 60) & (img[..., 2] < 60)
    assert red.sum() > 5


def test_same_seed_same_episode_and_different_seed_differs():
    rng = np.random.default_rng(0)
    actions = rng.uniform(envs.tabletop.ACTION_LOW, envs.tabletop.ACTION_HIGH, size=(4, 7))
    runs = []
    for seed in (3, 3, 4):
        env = make("MoveNear")
        obs, _ = env.reset(seed=seed)
        traj = [obs["image"], obs["natural_language_instruction"]]
        for a in actions:
            obs, *_ = env.step(a)
            traj.append(obs["base_pose_tool_reached"])
        traj.append(env.unwrapped.object_pos("apple"))
        runs.append(traj)
    a, b, c = runs
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[-1], c[-1])


def test_drawer_tasks_draw_every_drawer_from_the_seed():
    seen = set()
    for seed in range(20):
        env = make("OpenDrawer")
        _, info = env.reset(seed=seed)
        seen.add(info["instruction"].split()[1])
    assert seen == {"top", "middle", "bottom"}


def zero_step(env):
    return env.step(np.zeros(7, dtype=np.float32))


@pytest.mark.parametrize("task", ["OpenDrawerPlaceApple", "StoreApple"])
def test_stage_predicates_follow_the_state(task):
    env = make(task)
    env.reset(seed=1)
    u = env.unwrapped
    drawer = u.task.params["drawer"]
    _, _, term, _, info = zero_step(env)
    assert info["stages_completed"] == 0 and not term
    # Apple put in the closed drawer's position does not count before the drawer is open (stages are ordered).
    u.set_drawer_opening(drawer, 0.20)
    _, _, _, _, info = zero_step(env)
    assert info["stages_completed"] == 1
    u.set_object_position("apple", u.drawer_pos(drawer) + [0.10, 0.0, 0.05])
    _, reward, term, _, info = zero_step(env)
    assert u.in_drawer("apple", drawer)
    if task == "OpenDrawerPlaceApple":
        assert info["stages_completed"] == 2 and info["is_success"] and term and reward == 1.0
        return
    assert info["stages_completed"] == 2 and not term
    u.set_drawer_opening(drawer, 0.0)
    u.set_object_position("apple", u.drawer_pos(drawer) + [0.10, 0.0, 0.05])
    _, reward, term, _, info = zero_step(env)
    assert info["stages_completed"] == 3 and info["is_success"] and term and reward == 1.0


def test_open_and_close_thresholds():
    cases = (("OpenDrawer", OPEN_THRESHOLD + 0.01, True), ("OpenDrawer", OPEN_THRESHOLD - 0.03, False),
             ("CloseDrawer", CLOSED_THRESHOLD - 0.02, True), ("CloseDrawer", 0.1, False))
    for task, opening, expect in cases:
        env = make(task)
        env.reset(seed=2)
        env.unwrapped.set_drawer_opening(env.unwrapped.task.params["drawer"], opening)
        _, _, term, _, info = zero_step(env)
        assert info["is_success"] is expect and term is expect


def test_move_near_counts_only_when_placed_next_to_target():
    env = make("MoveNear")
    env.reset(seed=0)
    u = env.unwrapped
    src, tgt = u.task.params["source"], u.task.params["target"]
    _, _, _, _, info = zero_step(env)
    assert not info["is_success"]
    target = u.object_pos(tgt)
    u.set_object_position(src, np.array([target[0], target[1] - 0.08, u.object_pos(src)[2]]))
    _, _, term, _, info = zero_step(env)
    assert info["is_success"] and term


def test_pick_can_needs_a_grasp_not_just_height():
    env = make("PickCan")
    env.reset(seed=0)
    u = env.unwrapped
    u.set_object_position("coke_can", u.object_pos("coke_can") + [0, 0, 0.2])  # floating, not held
    _, _, _, _, info = env.step(np.zeros(7, dtype=np.float32))
    assert info["stages_completed"] == 0


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros((7, 1)), np.array([np.nan] + [0.0] * 6),
                                 np.array([0.0] * 6 + [np.inf])])
def test_bad_actions_raise_value_error(bad):
    env = make("PickCan")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)


def test_out_of_bounds_actions_are_clipped():
    results = []
    for scale in (1.0, 50.0):
        env = make("PickCan")
        env.reset(seed=0)
        action = np.array([0.05, -0.05, 0.05, 0.0, 0.0, 0.25, 1.0]) * scale
        obs, *_ = env.step(action)
        results.append(obs["base_pose_tool_reached"])
    np.testing.assert_array_equal(results[0], results[1])


def test_translation_action_moves_the_end_effector():
    env = make("PickCan")
    obs, _ = env.reset(seed=0)
    before = obs["base_pose_tool_reached"][:3].copy()
    for _ in range(2):
        obs, *_ = env.step(np.array([0.0, 0.04, 0.0, 0, 0, 0, 0], dtype=np.float32))
    moved = obs["base_pose_tool_reached"][:3] - before
    assert 0.06 < moved[1] < 0.09 and abs(moved[0]) < 0.01 and abs(moved[2]) < 0.01


def test_gripper_action_closes_and_opens():
    env = make("PickCan")
    obs, _ = env.reset(seed=0)
    assert obs["gripper_closed"][0] < 0.05
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32))
    assert obs["gripper_closed"][0] > 0.9
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, -1.0], dtype=np.float32))
    assert obs["gripper_closed"][0] < 0.05


def test_unstable_physics_truncates_with_reason():
    env = make("PickCan")
    env.reset(seed=0)
    env.unwrapped.data.qvel[:] = 1e12
    obs, _, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
    assert truncated and not terminated
    assert "unstable physics" in info["truncation_reason"]
    assert all(np.all(np.isfinite(v)) for k, v in obs.items() if k != "natural_language_instruction")


def _start_positions(jitter, seeds=range(12)) -> np.ndarray:
    env = make("PickCan", **({} if jitter is None else {"start_jitter": jitter}))
    return np.stack([env.reset(seed=s)[0]["base_pose_tool_reached"][:3] for s in seeds])


def test_start_jitter_bounds_and_spreads_the_start_pose():
    from envs.tabletop import START_JITTER, START_POSITION

    centre, tol = np.asarray(START_POSITION), 0.01  # IK and the settling steps move the hand by millimetres
    still = _start_positions(0.0)
    assert np.abs(still - centre).max() < tol and np.ptp(still, axis=0).max() < 1e-3
    default = _start_positions(None)
    assert np.all(np.abs(default - centre) <= np.asarray(START_JITTER) + tol)
    wide = np.asarray((0.15, 0.15, 0.06))
    spread = _start_positions(tuple(wide))
    assert np.all(np.abs(spread - centre) <= wide + tol)
    assert np.ptp(spread[:, :2], axis=0).min() > 0.12  # 12 seeds cover most of the ±15 cm in x and y
    assert np.ptp(default[:, :2], axis=0).max() < 0.06 + 2 * tol


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="render_mode"):
        envs.make("PickCan", render_mode="human")
    with pytest.raises(ValueError, match="image_size"):
        envs.make("PickCan", image_size=(4, 4))
    with pytest.raises(ValueError, match="unknown task"):
        envs.make("FlyToTheMoon")
    for jitter in (-0.01, 0.2, (0.1, float("nan"), 0.0)):
        with pytest.raises(ValueError, match="start_jitter"):
            envs.make("PickCan", start_jitter=jitter)
