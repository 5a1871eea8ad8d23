"""Linear path, x/velocity conversion, time samplers and the resolution shift."""

from __future__ import annotations

import math

import pytest
import torch

from worldmodel.models import Tokens
from worldmodel.objectives import (
    TimeSampler,
    interpolate,
    resolution_shift,
    shift_time,
    velocity_target,
    x_to_velocity,
)


def _tokens(seed: int) -> Tokens:
    g = torch.Generator().manual_seed(seed)
    return Tokens(torch.randn(3, 5, 4, generator=g), torch.randn(3, 2, 7, generator=g))


def test_path_endpoints_and_velocity() -> None:
    x, eps = _tokens(0), _tokens(1)
    ones, zeros = torch.ones(3, 7), torch.zeros(3, 7)
    assert torch.equal(interpolate(x, eps, ones).frames, x.frames)
    assert torch.equal(interpolate(x, eps, zeros).actions, eps.actions)
    # d x_t / dt = x - eps, per token
    t = torch.rand(3, 7)
    h = 1e-3
    fd = (interpolate(x, eps, t + h).frames - interpolate(x, eps, t - h).frames) / (2 * h)
    torch.testing.assert_close(fd, velocity_target(x, eps).frames, rtol=1e-3, atol=1e-3)


def test_per_token_time_is_applied_per_token() -> None:
    x, eps = _tokens(0), _tokens(1)
    t = torch.zeros(3, 7)
    t[0, 6] = 1.0  # last action token of sample 0 is clean, all else noise
    out = interpolate(x, eps, t)
    assert torch.equal(out.actions[0, 1], x.actions[0, 1])
    assert torch.equal(out.actions[0, 0], eps.actions[0, 0])
    assert torch.equal(out.frames, eps.frames)


def test_x_prediction_converts_to_the_true_velocity() -> None:
    x, eps = _tokens(0), _tokens(1)
    t = torch.rand(3, 7) * 0.9
    x_t = interpolate(x, eps, t)
    v = x_to_velocity(x, x_t, t, min_gap=0.05)  # a perfect x-prediction gives the exact velocity
    torch.testing.assert_close(v.frames, velocity_target(x, eps).frames, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(v.actions, velocity_target(x, eps).actions, rtol=1e-4, atol=1e-4)


def test_time_samplers() -> None:
    g = torch.Generator().manual_seed(0)
    u = TimeSampler("uniform")(100_000, g)
    assert u.min() >= 0 and u.max() <= 1 and abs(u.mean() - 0.5) < 0.01
    ln = TimeSampler("logit_normal", mean=-0.8, std=0.8)(100_000, g)
    logit = torch.log(ln / (1 - ln))
    assert abs(logit.mean() + 0.8) < 0.01 and abs(logit.std() - 0.8) < 0.01
    with pytest.raises(ValueError, match="time_sampler"):
        TimeSampler("beta")


def test_resolution_shift() -> None:
    t = torch.linspace(0, 1, 11)
    assert torch.equal(shift_time(t, 1.0), t)
    shifted = shift_time(t, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1
    assert (shifted[1:-1] < t[1:-1]).all()  # towards noise
    # sigma = 0.5 -> 3·0.5 / (1 + 2·0.5) = 0.75
    assert math.isclose(float(shift_time(torch.tensor(0.5), 3.0)), 0.25, abs_tol=1e-6)
    assert resolution_shift(4 * 320, 320) == 2.0
