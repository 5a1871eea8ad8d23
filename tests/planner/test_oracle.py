"""The oracle ladder on a toy: a point on a line (the env) and a toy world model, one candidate known best.

Env: ``x`` moves by ``a_0 + drift`` per step from 0; progress ``1 - |x - 0.7|``; the image's brightness is
``clip(x, 0, 1)``; reaching 0.7 ends the episode. Candidates are fixed two-step chunks whose final positions are
0.1, 0.3, 0.7 (the best), -0.1 and 1.0: true progress 0.4, 0.6, 1.0, 0.2, 0.7. The toy world model imagines
``x_t = gain · cumsum(a)`` as brightness frames, and its learned scorer reads progress off the last frame, so with
``gain = 1`` it is right and with ``gain = 2`` its dynamics are wrong (the learned rung picks 0.3 · 2 = 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldmodel.planner import PlanContext, PlanFns, Planner, PlannerConfig, SimulatorRollouts, ladder_fns

GOAL = 0.7
CANDIDATES = torch.tensor([[0.05, 0.05], [0.2, 0.1], [0.35, 0.35], [-0.1, 0.0], [0.5, 0.5]])[..., None]  # (5, 2, 1)
TRUE_PROGRESS = [0.4, 0.6, 1.0, 0.2, 0.7]
BEST = 2


@dataclass
class LineState:
    x: float
    steps: int


class LineEnv(gym.Env):
    """A point on a line with snapshots (``get_state`` / ``set_state``), as the tabletop env has."""

    def __init__(self, drift: float = 0.0) -> None:
        self.x, self.steps, self.drift = 0.0, 0, drift

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": np.full((8, 8, 3), round(255 * min(max(self.x, 0.0), 1.0)), np.uint8)}

    def step(self, action):
        self.x += float(action[0]) + self.drift
        self.steps += 1
        done = abs(self.x - GOAL) < 1e-6
        return self._obs(), float(done), done, False, {"progress": max(0.0, 1.0 - abs(self.x - GOAL))}

    def get_state(self) -> LineState:
        return LineState(self.x, self.steps)

    def set_state(self, state: LineState) -> None:
        self.x, self.steps = state.x, state.steps


def to_frames(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, T, 8, 8, 3) -> the toy model's frames (n, T, 1) in [-1, 1]."""
    return torch.as_tensor(images, dtype=torch.float32).mean((-3, -2, -1))[..., None] / 127.5 - 1


def toy_fns(gain: float = 1.0, proposals: torch.Tensor = CANDIDATES) -> PlanFns:
    def imagine(ctx: PlanContext, actions: torch.Tensor, steps: int, gen: torch.Generator) -> torch.Tensor:
        x = (gain * actions[..., :1].cumsum(1)).clamp(0, 1)
        return 2 * x - 1  # (n, T, 1)

    def propose(ctx: PlanContext, n: int, horizon: int, steps: int, gen: torch.Generator):
        torch.rand(1, generator=gen)  # a real policy draws noise: the rungs must not change its stream
        return proposals[:n, :horizon], imagine(ctx, proposals[:n, :horizon], steps, gen)

    def cost(ctx: PlanContext, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = (frames[:, -1, 0] + 1) / 2
        return -(1 - (x - GOAL).abs())

    return PlanFns(propose, imagine, cost, action_low=-torch.ones(1), action_high=torch.ones(1))


def plan(scorer: str, env: LineEnv, gain: float = 1.0, **cfg):
    sim = SimulatorRollouts(env, hold_steps=cfg.pop("hold", 0))
    config = PlannerConfig(num_candidates=5, horizon=2, execute_steps=1, smoothness_weight=0.0, scorer=scorer, **cfg)
    planner = Planner(ladder_fns(toy_fns(gain), scorer, sim, to_frames), config)
    return planner.plan(None, None), sim


@pytest.mark.parametrize("scorer", ["oracle", "learned_on_true", "learned"])
def test_every_rung_picks_the_known_best_with_a_right_model(scorer):
    env = LineEnv()
    result, _ = plan(scorer, env)
    np.testing.assert_array_equal(result.actions, CANDIDATES[BEST].numpy())
    np.testing.assert_array_equal(result.candidates, CANDIDATES.numpy())  # the same proposals on every rung
    if scorer == "oracle":  # scores are the true progress
        np.testing.assert_allclose(result.scores, TRUE_PROGRESS, atol=1e-6)
    assert (env.x, env.steps) == (0.0, 0)  # the live env is where it was


def test_the_rungs_separate_dynamics_from_scorer_errors():
    # A world model with wrong dynamics: imagining fools the learned scorer, the true futures do not.
    assert plan("learned", LineEnv(), gain=2.0)[0].actions[0, 0] == pytest.approx(0.2)  # candidate 1
    for scorer in ("learned_on_true", "oracle"):
        np.testing.assert_array_equal(plan(scorer, LineEnv(), gain=2.0)[0].actions, CANDIDATES[BEST].numpy())


def test_scorer_none_executes_the_first_proposal():
    result, sim = plan("none", LineEnv())
    np.testing.assert_array_equal(result.actions, CANDIDATES[0].numpy())
    assert sim.steps == 0  # nothing was simulated


def test_reimagining_and_refinement_reuse_the_cached_rollouts():
    env = LineEnv()
    result, sim = plan("oracle", env, reimagine=True)
    assert sim.steps == 5 * 2  # each candidate executed once: imagine and cost hit the cache
    assert result.score == pytest.approx(1.0, abs=1e-6)
    cem, sim = plan("oracle", env, method="cem", elites=2, iterations=2, init_std=0.05)
    assert cem.score >= result.score - 1e-6 and (env.x, env.steps) == (0.0, 0)


def test_rollouts_stop_at_the_episode_end_and_hold_steps_judge_later():
    env = LineEnv()
    sim = SimulatorRollouts(env)
    sim.begin()
    out = sim.rollout(np.array([[[0.7], [0.1], [0.1]], [[0.1], [0.1], [0.1]]], np.float32))
    assert out.frames.shape == (2, 3, 8, 8, 3) and out.terminated.tolist() == [True, False]
    assert np.array_equal(out.frames[0, 1], out.frames[0, 0]) and np.array_equal(out.frames[0, 2], out.frames[0, 0])
    np.testing.assert_allclose(out.progress, [1.0, 0.6], atol=1e-6)
    assert sim.steps == 1 + 3 and (env.x, env.steps) == (0.0, 0)
    # with a drift, two hold steps after the chunk move the point on: the progress is read there
    drifting = LineEnv(drift=0.05)
    held = SimulatorRollouts(drifting, hold_steps=2)
    held.begin()
    x_end = 0.1 + 2 * 0.05 + 2 * 0.05  # two chunk steps, two hold steps, each with the drift
    np.testing.assert_allclose(held.rollout(np.full((1, 2, 1), 0.05, np.float32)).progress, [1 - abs(x_end - GOAL)])
    assert held.steps == 4 and (drifting.x, drifting.steps) == (0.0, 0)


def test_simulator_rungs_need_an_env_and_a_snapshot():
    with pytest.raises(ValueError, match="live env"):
        SimulatorRollouts(None)
    with pytest.raises(RuntimeError, match="begin"):
        SimulatorRollouts(LineEnv()).rollout(np.zeros((1, 2, 1), np.float32))
    with pytest.raises(ValueError, match="needs the simulator"):
        ladder_fns(toy_fns(), "oracle")
    with pytest.raises(ValueError, match="planner.scorer"):
        PlannerConfig(scorer="true")
    with pytest.raises(ValueError, match="best_of_n"):
        PlannerConfig(scorer="none", method="cem")
