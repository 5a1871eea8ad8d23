"""The model-backed policies (``dit``, ``planner``) in the env, with a randomly initialised ``tiny`` world model."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from policies import available_policies, make_policy
from policies.planner import PlannerPolicyConfig
from worldmodel import WorldModel

SMALL = {
    "dit": dict(sampling_steps=2, execute_steps=1),
    "planner": dict(planner=dict(num_candidates=4, horizon=2, sampling_steps=2, execute_steps=2)),
    "planner-cem": dict(planner=dict(method="cem", num_candidates=4, elites=2, iterations=1, horizon=2,
                                     sampling_steps=1, execute_steps=1)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    return WorldModel.random("tiny", seed=0)


def run_steps(policy, task: str, seed: int, steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    env = envs.make(task, image_size=(48, 60))
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed)
    actions, video = [], []
    for _ in range(steps):
        video.append(policy.video_frame(obs))
        action = policy.select_action(obs)
        assert action.shape == (7,) and action.dtype == np.float32 and env.action_space.contains(action)
        actions.append(action)
        obs, *_ = env.step(action)
    env.close()
    return actions, video


@pytest.mark.parametrize("name", list(SMALL))
def test_model_policies_act_in_the_env(world_model, name):
    kind = name.split("-")[0]
    policy = make_policy(kind, env=None, world_model=world_model, **SMALL[name])
    actions, video = run_steps(policy, "PickCan", seed=4, steps=4)
    assert all(f.shape == (48, 120, 3) and f.dtype == np.uint8 for f in video)
    assert not video[0][:, 60:].any()  # nothing imagined before the first decision
    assert any(v[:, 60:].any() for v in video[1:])  # then the imagined frame for that moment
    stats = policy.episode_stats()
    execute = SMALL[name].get("planner", SMALL[name])["execute_steps"]
    assert stats["decisions"] == -(-4 // execute) == len(stats["decision_ms"])
    assert 0 < stats["decision_ms_p50"] <= stats["decision_ms_p95"]
    if kind == "planner":
        assert set(stats["plan_ms_mean"]) == {"propose_ms", "imagine_ms", "score_ms", "total_ms"}
    again, _ = run_steps(policy, "PickCan", seed=4, steps=4)  # reset(seed) makes episodes repeatable
    np.testing.assert_array_equal(np.stack(actions), np.stack(again))


def test_registry_and_configs():
    assert {"dit", "planner", "scripted", "random"} <= set(available_policies())
    with pytest.raises(ValueError, match="policy.checkpoint is required"):
        make_policy("planner", env=None)
    with pytest.raises(ValueError, match="policy.checkpoint is required"):
        make_policy("dit", env=None)
    with pytest.raises(ValueError, match="unknown dit policy keys"):
        make_policy("dit", env=None, checkpoint="x", method="cem")
    with pytest.raises(ValueError, match="unknown planner policy keys"):
        make_policy("planner", env=None, checkpoint="x", method="cem")  # the search settings are nested
    with pytest.raises(ValueError, match="unknown planner config keys"):
        PlannerPolicyConfig(planner={"bogus": 1})
    with pytest.raises(ValueError, match="planner.method"):
        PlannerPolicyConfig(planner={"method": "astar"})
    cfg = PlannerPolicyConfig(checkpoint="x", planner={"method": "mppi", "num_candidates": 8})
    assert cfg.planner.method == "mppi" and cfg.planner.num_candidates == 8


@pytest.mark.parametrize(("raw", "threshold", "executed"), [
    (0.7, 0.5, 1.0), (-0.9, 0.5, -1.0), (0.3, 0.5, 0.0), (-0.2, 0.5, 0.0), (0.3, 0.0, 0.3)])
def test_gripper_threshold(raw: float, threshold: float, executed: float) -> None:
    from policies.dit.modeling_dit import threshold_gripper

    action = np.array([0.01, 0.0, -0.01, 0.0, 0.0, 0.1, raw], np.float32)
    out = threshold_gripper(action, threshold)
    assert out[6] == pytest.approx(executed) and np.array_equal(out[:6], action[:6]) and action[6] == raw


def test_use_state_false_leaves_the_state_out(world_model) -> None:
    env = envs.make("PickCan", image_size=(48, 60))
    obs, _ = env.reset(seed=4)
    env.close()
    for kind in ("dit", "planner"):
        with_state = make_policy(kind, env=None, world_model=world_model)
        without = make_policy(kind, env=None, world_model=world_model, use_state=False)
        for policy in (with_state, without):
            policy.reset(seed=0)
            policy._states.append(np.zeros(8, np.float32))
        assert "base_pose_tool_reached" in with_state.condition(obs)
        cond = without.condition(obs)
        assert "base_pose_tool_reached" not in cond and "gripper_closed" not in cond
        assert cond["natural_language_instruction"] == obs["natural_language_instruction"]


def test_dit_temperature_reaches_the_sampler(world_model) -> None:
    env = envs.make("PickCan", image_size=(48, 60))
    obs, _ = env.reset(seed=4)
    env.close()
    first = {}
    for tau in (1.0, 0.0):
        policy = make_policy("dit", env=None, world_model=world_model, sampling_steps=2, temperature=tau)
        policy.reset(seed=0)
        first[tau] = policy.decide(obs["image"][None], policy.condition(obs))[0]
    default = make_policy("dit", env=None, world_model=world_model, sampling_steps=2)
    default.reset(seed=0)
    assert np.array_equal(default.decide(obs["image"][None], default.condition(obs))[0], first[1.0])
    assert not np.allclose(first[0.0], first[1.0])
    with pytest.raises(ValueError, match="policy.temperature"):
        make_policy("dit", env=None, world_model=world_model, temperature=-0.5)
