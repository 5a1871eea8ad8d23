"""The oracle ladder through the ``planner`` policy in the tabletop env, with a tiny random world model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import envs
from policies import make_policy
from worldmodel.evaluation.config import EvalConfig
from worldmodel.evaluation.report import build_report
from worldmodel.evaluation.sim import evaluate
from worldmodel.planner import SCORERS

SIZE = (32, 40)
SEARCH = dict(num_candidates=3, horizon=2, sampling_steps=1, execute_steps=2)


def warmed_env(seed: int = 3, steps: int = 3):
    env = envs.make("PickCan", image_size=SIZE)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-0.6, 0.6, 7).astype(np.float32) * env.action_space.high)
    return env, obs


def assert_same_obs(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


def test_oracle_decisions_leave_the_live_env_bit_identical(tiny_world_model):
    env, obs = warmed_env()
    twin = envs.make("PickCan", image_size=SIZE)  # the same episode, never planned in
    envs.set_state(twin, envs.get_state(env))
    policy = make_policy("planner", env=env, world_model=tiny_world_model,
                         planner=dict(SEARCH, scorer="oracle", diagnostics=True, oracle_hold_steps=1))
    policy.reset(seed=3)
    before = envs.get_state(env)
    action = policy.select_action(obs)
    assert policy.simulator.steps == 3 * (2 + 1)  # three candidates, two steps and a hold step each
    assert_same_obs(env.unwrapped.observation(), obs)
    after = envs.get_state(env)
    for field in ("physics", "pre_physics", "warnings", "embedding"):
        assert np.array_equal(getattr(after, field), getattr(before, field)), field
    assert (after.grip_cmd, after.stages_done, after.step_count, after.rng_state) == \
        (before.grip_cmd, before.stages_done, before.step_count, before.rng_state)
    rng = np.random.default_rng(0)
    for act in [action, *(rng.uniform(-0.5, 0.5, (3, 7)).astype(np.float32) * env.action_space.high)]:
        live, ref = env.step(act), twin.step(act)
        assert_same_obs(live[0], ref[0])
        assert live[1:] == ref[1:]  # reward, terminated, truncated, info (progress, step)
    assert env._elapsed_steps == twin._elapsed_steps  # the TimeLimit wrapper's count too


def test_every_rung_ranks_the_same_proposals(tiny_world_model):
    env, obs = warmed_env()
    candidates = {}
    for scorer in SCORERS:
        policy = make_policy("planner", env=env, world_model=tiny_world_model, planner=dict(SEARCH, scorer=scorer))
        policy.reset(seed=11)
        policy.select_action(obs)
        candidates[scorer] = policy.last_result.candidates
        assert policy.episode_stats()["scorer"] == scorer
    for scorer in SCORERS:
        np.testing.assert_array_equal(candidates[scorer], candidates["learned"], err_msg=scorer)


def test_planner_without_an_env_refuses_the_simulator_rungs(tiny_world_model):
    with pytest.raises(ValueError, match="live env"):
        make_policy("planner", env=None, world_model=tiny_world_model, planner=dict(SEARCH, scorer="oracle"))


@pytest.mark.parametrize("scorer", SCORERS)
def test_closed_loop_episode_with_each_scorer(tmp_path, write_tiny_checkpoint, scorer):
    """One PickCan episode through the eval harness, ranking diagnostics on: eval_info.json and the report."""
    ckpt = write_tiny_checkpoint(tmp_path / "run")
    policy_cfg = {"name": "planner", "checkpoint": str(ckpt), "device": "cpu",
                  "planner": dict(SEARCH, num_candidates=2, scorer=scorer, diagnostics=True)}
    out = tmp_path / "eval"
    evaluate(EvalConfig(tasks=["PickCan"], episodes=1, seed=5, out=str(out), image_size=SIZE), policy_cfg,
             show_progress=False)
    info = json.loads((out / "eval_info.json").read_text())
    extras = info["per_episode"][0]["extras"]
    ranking = extras["ranking"]
    assert extras["scorer"] == scorer and ranking["decisions"] == extras["decisions"] > 0
    assert len(ranking["spearman"]) == len(ranking["psnr"]) == ranking["decisions"]
    task = info["per_task"]["PickCan"]["ranking"]
    assert task["decisions"] == ranking["decisions"] == info["overall"]["ranking"]["decisions"]
    if scorer == "oracle":  # its scores are the true progress: a perfect ranking whenever one is defined
        assert task["top1_mean"] == 1.0 and task["regret_mean"] == 0.0
        assert all(s is None or s == pytest.approx(1.0) for s in ranking["spearman"])
    if scorer in ("learned", "none"):  # imagined futures are compared with the true ones
        assert task["n_psnr"] == ranking["decisions"] and 0 < task["psnr_mean"] < 60
        assert -1 <= task["ssim_mean"] <= 1
        assert len(ranking["action_corr"]) == ranking["decisions"]  # two candidates: defined unless tied futures
        assert task["n_action_corr"] == sum(v is not None for v in ranking["action_corr"])
    else:
        assert task["psnr_mean"] is None and task["action_corr_mean"] is None
    readme = build_report(tmp_path / "report", {"planner": out}, {}).read_text()
    assert "## Ranking quality" in readme and f"planner ({scorer}) | PickCan" in readme and "action corr" in readme


def test_planner_policy_imagines_with_a_second_model(tmp_path, write_tiny_checkpoint, tiny_world_model):
    """policy.imagine_checkpoint: the same proposals, re-imagined (and diagnosed) by the second model; a second
    model with the proposer's own weights imagines exactly what the one-model planner does."""
    env, obs = warmed_env()
    other = write_tiny_checkpoint(tmp_path / "other", seed=1)
    twin = write_tiny_checkpoint(tmp_path / "twin", seed=0)  # tiny_world_model's weights
    runs = {}
    for name, extra in (("one", {}), ("two", {"imagine_checkpoint": str(other)}),
                        ("twin", {"imagine_checkpoint": str(twin)})):
        policy = make_policy("planner", env=env, world_model=tiny_world_model,
                             planner=dict(SEARCH, diagnostics=True), **extra)
        policy.reset(seed=5)
        policy.select_action(obs)
        runs[name] = (policy, policy.last_result.candidates, policy.last_diagnosis.imagined)
    assert runs["one"][0].imaginer is None and runs["two"][0].imaginer is not None
    np.testing.assert_array_equal(runs["one"][1], runs["two"][1])  # the proposer's proposals, both times
    assert runs["one"][2].shape == runs["two"][2].shape
    assert not np.array_equal(runs["one"][2], runs["two"][2])  # imagined by the other network
    np.testing.assert_array_equal(runs["one"][2], runs["twin"][2])
