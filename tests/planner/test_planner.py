"""The planner on a toy world model with a quadratic cost and a known optimum (no network involved).

Toy: the "frames" are states ``s_t = 2·a_t + 0.1`` (n, T, A), a linear dynamics; the cost is
``sum_t |s_t - s*_t|^2``, minimised exactly by ``a* = (s* - 0.1) / 2``. The "policy" proposes Gaussian chunks
around a prior, which the tests bias away from the optimum so the search has something to fix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel.planner import METHODS, PlanContext, PlanFns, Planner, PlannerConfig

T, A = 3, 2
OPTIMUM = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.25, 0.05]])  # a*, (T, A)
TARGET = 2 * OPTIMUM + 0.1  # s*, (T, A)


def dynamics(actions: torch.Tensor) -> torch.Tensor:
    return 2 * actions + 0.1


def toy_fns(prior_mean: float = 0.0, prior_std: float = 0.3, calls: list | None = None) -> PlanFns:
    def imagine(ctx: PlanContext, actions: torch.Tensor, steps: int, gen: torch.Generator) -> torch.Tensor:
        if calls is not None:
            calls.append(("imagine", actions.shape[0]))
        return dynamics(actions)  # (n, T, A)

    def propose(ctx: PlanContext, n: int, horizon: int, steps: int, gen: torch.Generator):
        if calls is not None:
            calls.append(("propose", n))
        actions = prior_mean + prior_std * torch.randn((n, horizon, A), generator=gen)
        return actions, dynamics(actions)

    def cost(ctx: PlanContext, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return ((frames - TARGET[: frames.shape[1]]) ** 2).sum((1, 2))  # (n,)

    return PlanFns(propose, imagine, cost, action_low=-torch.ones(A), action_high=torch.ones(A))


def true_cost(actions: np.ndarray) -> float:
    a = torch.as_tensor(actions)
    return float(((dynamics(a) - TARGET[: len(a)]) ** 2).sum())


# Budgets for ~1e-2 accuracy: pure sampling needs ~(1/tol)^dims samples, so best-of-N gets a 2-D problem (one
# step); the refiners solve the 6-D one with 64 candidates per iteration.
SETTINGS = {
    "best_of_n": dict(num_candidates=4096, horizon=1, tolerance=0.03),
    "cem": dict(num_candidates=64, iterations=12, elites=8, init_std=0.005, tolerance=0.03),
    "mppi": dict(num_candidates=64, iterations=12, temperature=0.5, init_std=0.005, tolerance=0.01),
}


@pytest.mark.parametrize("method", METHODS)
def test_each_method_recovers_the_optimum(method):
    opts = dict(SETTINGS[method])
    tol = opts.pop("tolerance")
    opts.setdefault("horizon", T)
    planner = Planner(toy_fns(), PlannerConfig(method=method, execute_steps=1, seed=0, **opts))
    result = planner.plan(None, None)
    err = np.abs(result.actions - OPTIMUM[: opts["horizon"]].numpy()).max()
    assert err < tol, (method, err, result.actions)
    assert result.score == pytest.approx(-true_cost(result.actions), abs=1e-5)


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_refiners_beat_the_proposals_they_start_from(method):
    # A prior far from the optimum: the best proposal is poor, refinement must move the Gaussian.
    fns = toy_fns(prior_mean=-0.4, prior_std=0.1)
    base = dict(horizon=T, execute_steps=1, num_candidates=32, seed=3)
    proposals = Planner(fns, PlannerConfig(method="best_of_n", **base)).plan(None, None)
    refined = Planner(fns, PlannerConfig(method=method, iterations=8, elites=4, init_std=0.02, **base)).plan(None, None)
    assert refined.score > proposals.score + 0.5
    # same seed, same proposals: MPPI's first entry is their best cost, CEM's their elites' mean cost
    first = proposals.history[0]
    assert refined.history[0] == pytest.approx(first) if method == "mppi" else refined.history[0] > first


def test_best_of_n_returns_the_best_scoring_candidate():
    result = Planner(toy_fns(), PlannerConfig(num_candidates=16, horizon=T, execute_steps=1)).plan(None, None)
    best = int(np.argmax(result.scores))
    np.testing.assert_array_equal(result.actions, result.candidates[best])
    assert result.score == pytest.approx(result.scores.max())
    # scores really are -cost of each candidate, and the imagined frames belong to the chosen chunk
    np.testing.assert_allclose(result.scores, [-true_cost(c) for c in result.candidates], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.imagined_frames, dynamics(torch.as_tensor(result.actions)), atol=1e-6)


def test_cem_elite_cost_never_increases():
    for seed in range(5):
        cfg = PlannerConfig(method="cem", num_candidates=16, elites=4, iterations=8, horizon=T, execute_steps=1,
                            init_std=0.05, seed=seed)
        history = Planner(toy_fns(prior_mean=0.3), cfg).plan(None, None).history
        assert len(history) == cfg.iterations + 1
        assert all(b <= a + 1e-7 for a, b in zip(history, history[1:], strict=False)), history
        assert history[-1] < history[0]


def test_mppi_best_cost_never_increases():
    cfg = PlannerConfig(method="mppi", num_candidates=16, iterations=6, horizon=T, execute_steps=1, seed=1)
    history = Planner(toy_fns(prior_mean=0.3), cfg).plan(None, None).history
    assert all(b <= a + 1e-7 for a, b in zip(history, history[1:], strict=False)), history


@pytest.mark.parametrize("method", METHODS)
def test_seeded_determinism_and_shapes(method):
    cfg = PlannerConfig(method=method, num_candidates=8, horizon=T, execute_steps=1, elites=2, iterations=2, seed=5)
    planner = Planner(toy_fns(), cfg)
    a = planner.plan(None, None)
    b = planner.plan(None, None)  # the generator moved on: a different draw
    planner.reset(5)
    c = planner.plan(None, None)
    np.testing.assert_array_equal(a.actions, c.actions)
    np.testing.assert_array_equal(a.scores, c.scores)
    assert not np.array_equal(a.candidates, b.candidates)
    assert a.actions.shape == (T, A) and a.actions.dtype == np.float32
    assert a.imagined_frames.shape == (T, A)
    assert a.scores.shape == (8,) and a.candidates.shape == (8, T, A)
    assert set(a.timing) == {"propose_ms", "imagine_ms", "score_ms", "total_ms"}
    assert a.timing["total_ms"] >= a.timing["propose_ms"] >= 0


def test_candidates_are_batched_and_clipped():
    calls: list = []
    cfg = PlannerConfig(method="cem", num_candidates=16, elites=4, iterations=3, horizon=T, execute_steps=1,
                        init_std=2.0)  # a wide Gaussian: samples must be clipped to the bounds
    result = Planner(toy_fns(calls=calls), cfg).plan(None, None)
    # one propose + one re-imagine of all proposals, then one imagine of N - E fresh candidates per iteration
    assert calls == [("propose", 16), ("imagine", 16)] + [("imagine", 12)] * 3
    assert np.all(np.abs(result.candidates) <= 1.0)


def test_config_validates_itself():
    with pytest.raises(ValueError, match="planner.method"):
        PlannerConfig(method="random_shooting")
    with pytest.raises(ValueError, match="planner.elites"):
        PlannerConfig(method="cem", num_candidates=4, elites=4)
    with pytest.raises(ValueError, match="planner.execute_steps"):
        PlannerConfig(horizon=2, execute_steps=3)
    with pytest.raises(ValueError, match="planner.temperature"):
        PlannerConfig(temperature=0.0)
    with pytest.raises(ValueError, match="planner.proposal_temperature"):
        PlannerConfig(proposal_temperature=-1.0)
    with pytest.raises(ValueError, match="unknown planner config keys"):
        PlannerConfig.from_dict({"candidates": 3})
