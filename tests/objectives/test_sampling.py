"""Samplers: analytic Gaussian-to-Gaussian flow, clean-token pass-through, determinism, ``generate``."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models import DiTOutput, Tokens, build_model
from worldmodel.objectives import GenerationContext, generate, sample

M, S = 2.0, 0.5  # target N(M, S^2); the path starts from N(0, 1)


def gaussian_velocity(x: Tokens, t: torch.Tensor) -> Tokens:
    """Exact E[x - eps | x_t] for x ~ N(M, S^2), eps ~ N(0, 1), x_t = t·x + (1 - t)·eps."""

    def v(z: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        tt = tt[..., None]
        var = tt**2 * S**2 + (1 - tt) ** 2
        return M + (tt * S**2 - (1 - tt)) / var * (z - tt * M)

    tf, ta = x.split(t)
    return Tokens(v(x.frames, tf), None if x.actions is None else v(x.actions, ta))


@pytest.mark.parametrize(("method", "steps"), [("euler", 400), ("euler_maruyama", 400)])
def test_gaussian_to_gaussian_lands_on_target(method: str, steps: int) -> None:
    n = 30_000
    x0 = Tokens(torch.zeros(n, 1, 2), torch.zeros(n, 1, 1))
    gen = torch.ones(n, 2, dtype=torch.bool)
    out = sample(gaussian_velocity, x0, gen, steps, torch.Generator().manual_seed(0), method=method)
    values = torch.cat([out.frames.flatten(), out.actions.flatten()]).double()
    assert abs(values.mean() - M) / M < 0.01
    assert abs(values.std() - S) / S < 0.01


def test_clean_tokens_pass_through_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    x = Tokens(torch.randn(4, 6, 5, generator=g), torch.randn(4, 2, 7, generator=g))
    gen = torch.rand(4, 8, generator=g) < 0.5

    def wild(z: Tokens, t: torch.Tensor) -> Tokens:  # a velocity that would move every token a lot
        return Tokens(z.frames * 3 + 1, z.actions * 3 - 1)

    for method in ("euler", "euler_maruyama"):
        out = sample(wild, x, gen, 5, torch.Generator().manual_seed(1), method=method)
        gf, ga = x.split(gen)
        assert torch.equal(out.frames[~gf], x.frames[~gf])
        assert torch.equal(out.actions[~ga], x.actions[~ga])
        assert not torch.equal(out.frames[gf], x.frames[gf])


def test_all_generated_tokens_share_one_time() -> None:
    seen = []

    def record(z: Tokens, t: torch.Tensor) -> Tokens:
        seen.append(t.clone())
        return Tokens(torch.zeros_like(z.frames), torch.zeros_like(z.actions))

    x = Tokens(torch.zeros(2, 3, 1), torch.zeros(2, 1, 1))
    gen = torch.tensor([[True, False, True, True], [False, True, True, False]])
    sample(record, x, gen, 4)
    for k, t in enumerate(seen):
        assert torch.equal(t[gen], torch.full_like(t[gen], k / 4))
        assert torch.equal(t[~gen], torch.ones_like(t[~gen]))


class ConstantX(torch.nn.Module):
    """A fake x-predicting model that always predicts the same clean tokens."""

    def __init__(self, cfg, value: float) -> None:
        super().__init__()
        self.cfg, self.value = cfg, value

    def forward(self, x, t, layout, lang=None, return_hidden=()):
        actions = None if x.actions is None else torch.full_like(x.actions, self.value)
        return DiTOutput(Tokens(torch.full_like(x.frames, self.value), actions))


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_x_prediction_sampling_reaches_the_prediction(steps: int) -> None:
    cfg = build_model("tiny", prediction="x").cfg
    ctx = GenerationContext(torch.zeros(2, 1, 3, cfg.frame_height, cfg.frame_width), future_frames=2)
    out = generate(ConstantX(cfg, 0.3), "policy", ctx, steps, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.frames, torch.full_like(out.frames, 0.3))
    torch.testing.assert_close(out.actions, torch.full_like(out.actions, 0.3))


@pytest.mark.parametrize("verb", ["policy", "dynamics", "inverse", "video"])
def test_generate_shapes_and_determinism(verb: str) -> None:
    model = build_model("tiny")
    with torch.no_grad():
        model.frame_head.weight.normal_(std=0.1)
        model.action_head.weight.normal_(std=0.1)
    cfg = model.cfg
    k, f = cfg.context_frames, cfg.future_frames
    given = k + f if verb == "inverse" else k
    g = torch.Generator().manual_seed(0)
    ctx = GenerationContext(
        frames=torch.rand(2, given, 3, cfg.frame_height, cfg.frame_width, generator=g) * 2 - 1,
        future_frames=f,
        actions=torch.randn(2, f, 7, generator=g) if verb == "dynamics" else None,
        lang=torch.randn(2, 512, generator=g),
    )
    a = generate(model, verb, ctx, 3, torch.Generator().manual_seed(5))
    b = generate(model, verb, ctx, 3, torch.Generator().manual_seed(5))
    c = generate(model, verb, ctx, 3, torch.Generator().manual_seed(6))
    makes_frames, makes_actions = verb != "inverse", verb in ("policy", "inverse")
    assert (a.frames is not None) == makes_frames and (a.actions is not None) == makes_actions
    if makes_frames:
        assert a.frames.shape == (2, f, 3, cfg.frame_height, cfg.frame_width)
        assert torch.equal(a.frames, b.frames) and not torch.equal(a.frames, c.frames)
    if makes_actions:
        assert a.actions.shape == (2, f, 7)
        assert torch.equal(a.actions, b.actions) and not torch.equal(a.actions, c.actions)


def test_dynamics_needs_actions() -> None:
    model = build_model("tiny")
    ctx = GenerationContext(torch.zeros(1, 1, 3, 32, 40), future_frames=2)
    with pytest.raises(ValueError, match="actions"):
        generate(model, "dynamics", ctx, 2)


@pytest.mark.parametrize("method", ["euler", "euler_maruyama"])
def test_shared_noise_gives_every_row_the_first_rows_draws(method: str) -> None:
    x0 = Tokens(torch.zeros(4, 1, 2), torch.zeros(4, 1, 1))
    gen = torch.ones(4, 2, dtype=torch.bool)
    shared = sample(gaussian_velocity, x0, gen, 5, torch.Generator().manual_seed(0), method=method,
                    shared_noise=True)
    assert torch.equal(shared.frames, shared.frames[:1].expand_as(shared.frames))
    assert torch.equal(shared.actions, shared.actions[:1].expand_as(shared.actions))
    first = Tokens(x0.frames[:1], x0.actions[:1])  # the same generator, one row: the very same draws
    alone = sample(gaussian_velocity, first, gen[:1], 5, torch.Generator().manual_seed(0), method=method)
    torch.testing.assert_close(shared.frames[:1], alone.frames)
    independent = sample(gaussian_velocity, x0, gen, 5, torch.Generator().manual_seed(0), method=method)
    assert not torch.equal(independent.frames[0], independent.frames[1])
