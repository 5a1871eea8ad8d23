"""Euler ODE / Euler–Maruyama SDE samplers over generated tokens, and ``generate`` for the four verbs.

Solvers take a velocity callable ``velocity_fn(x_t: Tokens, t: (B, N)) -> Tokens`` (docs/architecture.md,
"Objectives"); clean tokens are re-selected from the input with ``torch.where`` at every step, so they come
out bit-for-bit unchanged. All generated tokens share one t, stepping from 0 (noise) to 1 (clean).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from worldmodel.models.conditioning import Condition, as_condition
from worldmodel.models.layout import TokenLayout, Tokens, generated_mask, patchify, unpatchify
from worldmodel.objectives.path import as_velocity, randn_like_tokens, shift_time

VelocityFn = Callable[[Tokens, Tensor], Tokens]
METHODS = ("euler", "euler_maruyama")


def time_grid(steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """(steps + 1,) times from 0 to 1, optionally resolution-shifted towards noise."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return shift_time(torch.linspace(0.0, 1.0, steps + 1, device=device), shift)


def _axpy(x: Tokens, a: Tensor | float, y: Tokens) -> Tokens:
    return Tokens(x.frames + a * y.frames, None if x.actions is None else x.actions + a * y.actions)


@torch.no_grad()
def sample(
    velocity_fn: VelocityFn,
    x_clean: Tokens,
    generated: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    method: str = "euler",
    noise_scale: float = 1.0,
    shift: float = 1.0,
    temperature: float = 1.0,
    shared_noise: bool = False,
) -> Tokens:
    """Integrate the flow from noise to data on generated tokens.

    Euler–Maruyama uses the SDE with the same marginals, ``dx = [v - c·eps_hat] dt + sqrt(2c(1 - t)) dW`` with
    ``eps_hat = x - t·v`` (the linear path's noise estimate) and ``c = noise_scale``; its last step is
    deterministic.

    Args:
        velocity_fn: (x_t tokens, t (B, N)) -> velocity tokens.
        x_clean: tokens with the clean values at clean positions (generated positions are ignored).
        generated: (B, N) bool.
        steps: number of steps (>= 1).
        generator: source of the initial noise and SDE noise.
        method: ``euler`` (ODE) or ``euler_maruyama`` (SDE).
        noise_scale: c >= 0 for the SDE.
        shift: resolution shift of the time grid.
        temperature: scale of the initial noise of the generated *action* tokens (1: the learned distribution;
            below 1 the samples concentrate towards the most likely chunk; the frames' noise is not scaled).
        shared_noise: draw the noise (initial and SDE) for one sample and give it to the whole batch (common
            random numbers): samples that differ only in their clean tokens then differ in their outputs only
            because of those tokens, e.g. the futures of N action chunks imagined for one state.

    Returns:
        Tokens shaped like ``x_clean`` with generated positions sampled.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    grid = time_grid(steps, shift)
    keep = ~generated
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    def draw(like: Tokens) -> Tokens:
        if not shared_noise:
            return randn_like_tokens(like, generator)
        one = randn_like_tokens(Tokens(like.frames[:1], None if like.actions is None else like.actions[:1]),
                                generator)
        return Tokens(one.frames.expand_as(like.frames),
                      None if one.actions is None else one.actions.expand_as(like.actions))

    noise = draw(x_clean)
    if temperature != 1.0 and noise.actions is not None:
        noise = Tokens(noise.frames, temperature * noise.actions)
    x = x_clean.where(keep, noise)
    one = torch.ones(generated.shape, device=generated.device)
    for k in range(steps):
        t0, t1 = float(grid[k]), float(grid[k + 1])
        t = torch.where(generated, t0, one)  # (B, N)
        v = velocity_fn(x, t)
        dt = t1 - t0
        if method == "euler" or k == steps - 1:
            x_next = _axpy(x, dt, v)
        else:
            eps_hat = _axpy(x, -t0, v)
            drift = _axpy(v, -noise_scale, eps_hat)
            z = draw(x)
            x_next = _axpy(_axpy(x, dt, drift), (2 * noise_scale * (1 - t0) * dt) ** 0.5, z)
        x = x_clean.where(keep, x_next)
    return x


def model_velocity_fn(model: nn.Module, layout: TokenLayout, lang: Tensor | Condition | None) -> VelocityFn:
    """Wrap a ``VideoActionDiT`` as a velocity callable (x-predictions converted exactly, t < 1 at every
    step)."""

    def fn(x: Tokens, t: Tensor) -> Tokens:
        pred = model(x, t, layout, lang).pred
        return as_velocity(pred, x, t, model.cfg.prediction, 1e-6)

    return fn


def guided_velocity_fn(model: nn.Module, layout: TokenLayout, lang: Tensor | Condition | None,
                       scale: float) -> VelocityFn:
    """Classifier-free guidance as a wrapper: ``v = v_null + scale · (v_cond − v_null)``.

    The null branch drops the language (sentence and instruction) but keeps the robot state, the condition the
    model learned through ``objective.language_dropout``. ``scale = 1`` is the plain conditional model (one
    forward pass, no null branch); both branches run as one batch of 2B otherwise.
    """
    if scale == 1.0:
        return model_velocity_fn(model, layout, lang)
    cond = as_condition(lang)
    both = Condition.cat([cond, cond.without_language()])

    def fn(x: Tokens, t: Tensor) -> Tokens:
        b = t.shape[0]
        x2 = Tokens(torch.cat([x.frames, x.frames]), None if x.actions is None else torch.cat([x.actions, x.actions]))
        pred = model(x2, torch.cat([t, t]), layout, both).pred
        v = as_velocity(pred, x2, torch.cat([t, t]), model.cfg.prediction, 1e-6)
        vf = v.frames[b:] + scale * (v.frames[:b] - v.frames[b:])
        va = None if v.actions is None else v.actions[b:] + scale * (v.actions[:b] - v.actions[b:])
        return Tokens(vf, va)

    return fn


@dataclass
class GenerationContext:
    """What is given to :func:`generate`.

    Attributes:
        frames: (B, K, C, H, W) context frames in [-1, 1]; for ``inverse`` all K + F frames.
        future_frames: F.
        actions: (B, F, A) normalised actions, required for ``dynamics``.
        lang: (B, lang_dim) language embedding, a :class:`~worldmodel.models.Condition`, or None.
        guidance: classifier-free guidance scale on the language (1: off).
        temperature: scale of the generated actions' initial noise (1: off; see :func:`sample`).
        shared_noise: one noise sample for the whole batch (common random numbers; see :func:`sample`).
    """

    frames: Tensor
    future_frames: int
    actions: Tensor | None = None
    lang: Tensor | Condition | None = None
    guidance: float = 1.0
    temperature: float = 1.0
    shared_noise: bool = False


@dataclass
class GenerationResult:
    """Generated values (None for what the verb does not generate).

    Attributes:
        frames: (B, F, C, H, W) future frames in [-1, 1] scale (not clipped).
        actions: (B, F, A) normalised actions.
    """

    frames: Tensor | None
    actions: Tensor | None


def generate(
    model: nn.Module,
    verb: str,
    context: GenerationContext,
    steps: int = 8,
    generator: torch.Generator | None = None,
    method: str = "euler",
    noise_scale: float = 1.0,
    shift: float = 1.0,
) -> GenerationResult:
    """Run one verb: ``policy`` -> frames + actions, ``dynamics`` / ``video`` -> frames, ``inverse`` ->
    actions. An action-only model (``cfg.future_frame_tokens`` False) runs ``policy`` only and returns no frames.

    Deterministic for a given ``generator`` state.
    """
    cfg = model.cfg
    b, given, c, h, w = context.frames.shape
    f = context.future_frames
    k = given - f if verb == "inverse" else given
    has_actions = verb != "video"
    imagines = getattr(cfg, "future_frame_tokens", True)  # False: an action-only model
    layout = TokenLayout(k, f, (h // cfg.patch, w // cfg.patch), has_actions, imagines)
    gen = generated_mask(verb, layout).to(context.frames.device)[None].expand(b, -1)  # (B, N)
    frames = context.frames
    if verb != "inverse" and imagines:
        pad = frames.new_zeros(b, f, c, h, w)
        frames = torch.cat([frames, pad], dim=1)  # (B, K+F, C, H, W)
    actions = None
    if has_actions:
        if verb == "dynamics":
            if context.actions is None:
                raise ValueError("verb 'dynamics' needs context.actions (B, F, A)")
            actions = context.actions.to(frames.dtype)
        else:
            actions = frames.new_zeros(b, f, cfg.action_dim)
    x_clean = Tokens(patchify(frames, cfg.patch), actions)
    fn = guided_velocity_fn(model, layout, context.lang, context.guidance)
    out = sample(fn, x_clean, gen, steps, generator, method, noise_scale, shift, context.temperature,
                 context.shared_noise)
    out_frames = None
    if verb in ("policy", "dynamics", "video") and imagines:
        out_frames = unpatchify(out.frames, k + f, h, w, cfg.patch)[:, k:]
    out_actions = out.actions if verb in ("policy", "inverse") else None
    return GenerationResult(out_frames, out_actions)
