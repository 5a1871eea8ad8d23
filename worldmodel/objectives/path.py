"""The linear probability path and training-time samplers.

Convention (docs/architecture.md, "Time convention"): ``x_t = t·x + (1 - t)·eps``, t = 1 clean, t = 0 noise,
velocity ``v = x - eps``.
All functions take per-token times ``t`` of shape (B, N) and act on :class:`~worldmodel.models.Tokens`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldmodel.models.layout import Tokens


def _per_token(x: Tokens, t: Tensor) -> tuple[Tensor, Tensor | None]:
    """Split (B, N) times into broadcastable frame (B, Nf, 1) and action (B, Na, 1) parts."""
    tf, ta = x.split(t)
    return tf[..., None], (None if ta is None else ta[..., None])


def interpolate(x: Tokens, eps: Tokens, t: Tensor) -> Tokens:
    """x_t = t·x + (1 - t)·eps per token; t (B, N)."""
    tf, ta = _per_token(x, t)
    frames = tf * x.frames + (1 - tf) * eps.frames
    actions = None if x.actions is None else ta * x.actions + (1 - ta) * eps.actions
    return Tokens(frames, actions)


def velocity_target(x: Tokens, eps: Tokens) -> Tokens:
    """v = x - eps (independent of t on the linear path)."""
    return Tokens(x.frames - eps.frames, None if x.actions is None else x.actions - eps.actions)


def x_to_velocity(x_pred: Tokens, x_t: Tokens, t: Tensor, min_gap: float) -> Tokens:
    """Velocity implied by a clean-data prediction: v = (x_pred - x_t) / max(1 - t, min_gap); t (B, N)."""
    tf, ta = _per_token(x_t, t)
    frames = (x_pred.frames - x_t.frames) / (1 - tf).clamp_min(min_gap)
    actions = None if x_t.actions is None else (x_pred.actions - x_t.actions) / (1 - ta).clamp_min(min_gap)
    return Tokens(frames, actions)


def as_velocity(pred: Tokens, x_t: Tokens, t: Tensor, prediction: str, min_gap: float) -> Tokens:
    """Network output -> velocity for ``prediction`` in {"velocity", "x"}."""
    if prediction == "velocity":
        return pred
    if prediction == "x":
        return x_to_velocity(pred, x_t, t, min_gap)
    raise ValueError(f"prediction must be 'velocity' or 'x', got {prediction!r}")


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Resolution shift of SD3 on the noise level sigma = 1 - t: sigma' = s·sigma / (1 + (s - 1)·sigma).

    ``shift > 1`` moves mass towards noise (for more tokens / higher resolution); ``shift = 1`` is the
    identity.
    """
    if shift == 1.0:
        return t
    sigma = 1 - t
    return 1 - shift * sigma / (1 + (shift - 1) * sigma)


def resolution_shift(num_tokens: int, base_tokens: int) -> float:
    """The shift for ``num_tokens`` generated values relative to a schedule tuned at ``base_tokens``:
    sqrt(num / base) (SD3's rule of thumb)."""
    return math.sqrt(num_tokens / base_tokens)


class TimeSampler:
    """Draws per-sample training times t in [0, 1] (1 = clean).

    Args:
        kind: ``uniform`` or ``logit_normal`` (t = sigmoid(mean + std·z)).
        mean: logit-normal mean (negative -> noisier).
        std: logit-normal std.
        shift: resolution shift applied after drawing (see :func:`shift_time`).
    """

    def __init__(self, kind: str = "logit_normal", mean: float = 0.0, std: float = 1.0, shift: float = 1.0):
        if kind not in ("uniform", "logit_normal"):
            raise ValueError(f"time_sampler must be 'uniform' or 'logit_normal', got {kind!r}")
        self.kind, self.mean, self.std, self.shift = kind, mean, std, shift

    def __call__(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> Tensor:
        """Draw (n,) times on ``device`` (random numbers come from ``generator``'s device)."""
        gen_device = generator.device if generator is not None else device
        if self.kind == "uniform":
            t = torch.rand(n, generator=generator, device=gen_device)
        else:
            t = torch.sigmoid(self.mean + self.std * torch.randn(n, generator=generator, device=gen_device))
        return shift_time(t, self.shift).to(device)


def randn_like_tokens(x: Tokens, generator: torch.Generator | None = None) -> Tokens:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` (frames first, then actions)."""

    def draw(like: Tensor) -> Tensor:
        dev = generator.device if generator is not None else like.device
        return torch.randn(like.shape, generator=generator, device=dev, dtype=torch.float32).to(like)

    return Tokens(draw(x.frames), None if x.actions is None else draw(x.actions))
