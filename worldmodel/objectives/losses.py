"""Vanilla flow matching and Self-Flow as named loss functions returning :class:`LossOutput`
(docs/architecture.md, "Objectives").

Random numbers are drawn in a fixed order — t, noise, (``context_noise`` only) the clean level,
(``independent_action_time`` only) the actions' time, then (Self-Flow only) s and the token mask — so that with
the same generator Self-Flow at ``R_M = 0`` feeds the student exactly what vanilla flow matching feeds the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.models.conditioning import Condition
from worldmodel.models.layout import TokenLayout, Tokens, batch_generated_mask, patchify
from worldmodel.objectives.config import ObjectiveConfig
from worldmodel.objectives.path import (
    TimeSampler,
    as_velocity,
    interpolate,
    randn_like_tokens,
    velocity_target,
)


@dataclass
class FlowBatch:
    """One training batch in token space.

    Attributes:
        x: clean tokens: frames (B, Nf, P), actions (B, Na, A) or None.
        generated: (B, N) bool, True for tokens the verb generates (the loss covers only these).
        layout: the token layout.
        lang: (B, lang_dim) language embedding, a :class:`~worldmodel.models.Condition`, or None.
    """

    x: Tokens
    generated: Tensor
    layout: TokenLayout
    lang: Tensor | Condition | None = None

    @classmethod
    def from_clip(
        cls,
        frames: Tensor,
        actions: Tensor | None,
        lang: Tensor | Condition | None,
        verbs: list[str],
        context_frames: int,
        patch: int,
        future_frame_tokens: bool = True,
    ) -> FlowBatch:
        """Build from a clip.

        Args:
            frames: (B, K+F, C, H, W) in [-1, 1].
            actions: (B, F, A) normalised actions, or None (pretraining video).
            lang: (B, lang_dim), a :class:`~worldmodel.models.Condition`, or None.
            verbs: B verbs (see :class:`~worldmodel.models.VerbSampler`).
            context_frames: K.
            patch: patch side p.
            future_frame_tokens: False for an action-only model: the future frames are dropped from the tokens.
        """
        _, t, _, h, w = frames.shape
        layout = TokenLayout(
            context_frames, t - context_frames, (h // patch, w // patch), actions is not None, future_frame_tokens
        )
        gen = batch_generated_mask(verbs, layout).to(frames.device)
        return cls(Tokens(patchify(frames[:, :layout.num_frames], patch), actions), gen, layout, lang)


@dataclass
class LossOutput:
    """Loss terms (scalars). ``total`` is what to backpropagate; the rest are for logging.

    Attributes:
        total: flow + gamma·rep + keypoint_action_weight·keypoint_actions.
        flow: velocity MSE over generated tokens (frames + action_weight·actions).
        rep: Self-Flow representation loss, mean over generated tokens of 1 - cos (0 when off).
        cosine: mean cosine between projected student and teacher features (0 when off).
        masked_fraction: fraction of generated tokens that got the second time s (0 when off).
        flow_frames: velocity MSE over generated frame tokens (a weighted mean when ``objective.motion_weight``
            > 0 or ``objective.policy_frame_weight`` != 1: then not comparable with an unweighted run's).
        flow_actions: velocity MSE over generated action tokens (0 if none).
        keypoint_actions: the auxiliary keypoint head's clean-action MSE over samples with actions (0 when off).
    """

    total: Tensor
    flow: Tensor
    rep: Tensor
    cosine: Tensor
    masked_fraction: Tensor
    flow_frames: Tensor
    flow_actions: Tensor
    keypoint_actions: Tensor

    def as_dict(self) -> dict[str, float]:
        """Plain floats for logging."""
        return {k: float(v.detach()) for k, v in self.__dict__.items()}


@dataclass
class SelfFlowInputs:
    """What the student and teacher see (exposed for tests and debugging).

    Attributes:
        x_student, t_student: student tokens and (B, N) times: masked generated tokens at s, others at t,
            clean at 1.
        x_teacher, t_teacher: teacher tokens and times: generated at max(t, s), clean at 1; same noise.
        eps: the shared noise.
        masked: (B, N) bool, generated tokens that got s.
        t, s: (B,) the two per-sample times.
    """

    x_student: Tokens
    t_student: Tensor
    x_teacher: Tokens
    t_teacher: Tensor
    eps: Tokens
    masked: Tensor
    t: Tensor
    s: Tensor


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of values (B, N) over mask (B, N); 0 when the mask is empty."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


# the smallest mean change (pixel units in [-1, 1]) that motion weights are normalised by
MOTION_FLOOR = 0.01


def motion_weights(frames: Tensor, layout: TokenLayout, generated: Tensor, strength: float) -> Tensor:
    """Per-token weights (B, Nf) of the frame loss that favour what moves (``objective.motion_weight``).

    Args:
        frames: (B, Nf, P) clean frame tokens, frame-major (K context frames, then the F future frames).
        layout: their layout (needs K >= 1 and future-frame tokens).
        generated: (B, Nf) bool, the generated frame tokens (the mean of ``m`` is taken over these).
        strength: ``motion_weight`` (0: all ones).

    Returns:
        ``1 + strength · m / max(mean(m), MOTION_FLOOR)``, ``m`` the mean absolute change of each token from the
        same patch of the last context frame (0 for the context frames themselves); no gradient. The floor keeps a
        nearly static batch (a still arm, video clips) from blowing rendering noise up into large weights.
    """
    if strength == 0 or layout.context_frames < 1 or not layout.future_frame_tokens:
        return torch.ones(frames.shape[:2], device=frames.device)
    with torch.no_grad():
        b, n, p = frames.shape
        per_frame = layout.tokens_per_frame
        x = frames.float().reshape(b, n // per_frame, per_frame, p)
        last = x[:, layout.context_frames - 1: layout.context_frames]
        m = (x - last).abs().mean(-1)  # (B, frames, tokens per frame)
        m[:, : layout.context_frames] = 0
        m = m.reshape(b, n)
        mean = _masked_mean(m, generated).clamp_min(MOTION_FLOOR)
        return 1 + strength * m / mean


def _policy_rows(gen_f: Tensor, gen_a: Tensor) -> Tensor:
    """(B,) bool: the rows that generate frames and actions together (the ``policy`` verb)."""
    return gen_f.any(1) & gen_a.any(1)


def _sampler(cfg: ObjectiveConfig) -> TimeSampler:
    return TimeSampler(cfg.time_sampler, cfg.time_mean, cfg.time_std, cfg.time_shift)


def _draw_t_eps(
    batch: FlowBatch, cfg: ObjectiveConfig, generator: torch.Generator | None
) -> tuple[Tensor, Tokens, Tensor, Tensor]:
    """Draw the per-sample time t (B,), the noise, the clean tokens' level (B,) (1 unless context_noise), and the
    generated tokens' times (B, N): t, except the actions of policy rows with ``independent_action_time``."""
    b, device = batch.generated.shape[0], batch.generated.device
    t = _sampler(cfg)(b, generator, device)  # (B,)
    eps = randn_like_tokens(batch.x, generator)
    clean = torch.ones_like(t)
    if cfg.context_noise > 0:
        u = torch.rand(b, generator=generator, device=generator.device if generator is not None else device).to(device)
        clean = 1 - cfg.context_noise * u
    t_tokens = t[:, None].expand_as(batch.generated)
    if cfg.independent_action_time and batch.x.actions is not None:
        t_actions = _sampler(cfg)(b, generator, device)  # (B,)
        gen_f, gen_a = batch.x.split(batch.generated)
        own = torch.where(_policy_rows(gen_f, gen_a), t_actions, t)  # (B,)
        t_tokens = torch.cat([t[:, None].expand_as(gen_f), own[:, None].expand_as(gen_a)], dim=1)
    return t, eps, clean, t_tokens


def _flow_terms(
    model: nn.Module,
    batch: FlowBatch,
    x_t: Tokens,
    tau: Tensor,
    eps: Tokens,
    cfg: ObjectiveConfig,
    return_hidden: tuple[int, ...] = (),
) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[int, Tensor]]:
    """Run the model and return (flow, flow_frames, flow_actions, keypoint_actions, hidden)."""
    out = model(x_t, tau, batch.layout, batch.lang, return_hidden=return_hidden)
    v_pred = as_velocity(out.pred, x_t, tau, model.cfg.prediction, cfg.x_pred_min_gap)
    v = velocity_target(batch.x, eps)
    gen_f, gen_a = batch.x.split(batch.generated)
    err_f = (v_pred.frames.float() - v.frames).pow(2).mean(-1)  # (B, Nf)
    if cfg.motion_weight > 0 or cfg.policy_frame_weight != 1.0:
        w = motion_weights(batch.x.frames, batch.layout, gen_f, cfg.motion_weight) * gen_f
        if cfg.policy_frame_weight != 1.0 and gen_a is not None:  # policy rows generate frames and actions
            w = w * torch.where(_policy_rows(gen_f, gen_a), cfg.policy_frame_weight, 1.0)[:, None]
        flow_frames = (err_f * w).sum() / w.sum().clamp_min(1e-8)
    else:
        flow_frames = _masked_mean(err_f, gen_f)  # over (B, Nf)
    flow_actions = torch.zeros((), device=tau.device)
    if v.actions is not None:
        if cfg.action_loss == "x":  # the clean actions' MSE: every noise level weighted alike
            _, tau_a = batch.x.split(tau)
            x_hat = (out.pred.actions if model.cfg.prediction == "x"
                     else x_t.actions + (1 - tau_a[..., None]) * out.pred.actions)
            err = x_hat.float() - batch.x.actions
        else:
            err = v_pred.actions.float() - v.actions
        flow_actions = _masked_mean(err.pow(2).mean(-1), gen_a)  # over (B, Na)
    keypoint = _keypoint_term(model, batch, out.points, cfg)
    return flow_frames + cfg.action_weight * flow_actions, flow_frames, flow_actions, keypoint, out.hidden


def _keypoint_term(model: nn.Module, batch: FlowBatch, points: Tensor | None, cfg: ObjectiveConfig) -> Tensor:
    """The auxiliary behaviour-cloning MSE of the model's keypoint head (0 when off or without actions)."""
    if cfg.keypoint_action_weight == 0 or batch.x.actions is None:
        return torch.zeros((), device=batch.generated.device)
    if not model.cfg.keypoint_head or points is None:
        raise ValueError("objective.keypoint_action_weight > 0 needs model.keypoint_head=true (and context frames)")
    target = batch.x.actions.float()
    if target.shape[1] != model.cfg.future_frames:
        raise ValueError(f"keypoint_head predicts {model.cfg.future_frames} actions, the batch has {target.shape[1]}")
    return (model.keypoint_actions(points, batch.lang).float() - target).pow(2).mean()


def flow_matching_loss(
    model: nn.Module, batch: FlowBatch, cfg: ObjectiveConfig, generator: torch.Generator | None = None
) -> LossOutput:
    """Vanilla flow matching: one t per sample for all generated tokens (with ``independent_action_time``, a
    second one for a policy example's actions), clean tokens at t = 1.

    Args:
        model: a ``VideoActionDiT`` (its ``cfg.prediction`` says how to read the output).
        batch: the batch.
        cfg: objective config (``selfflow`` is ignored here).
        generator: source of t and noise.
    """
    _, eps, clean, t_tokens = _draw_t_eps(batch, cfg, generator)
    tau = torch.where(batch.generated, t_tokens, clean[:, None])  # (B, N)
    x_t = interpolate(batch.x, eps, tau)
    flow, ff, fa, kp, _ = _flow_terms(model, batch, x_t, tau, eps, cfg)
    zero = torch.zeros((), device=flow.device)
    return LossOutput(total=flow + cfg.keypoint_action_weight * kp, flow=flow, rep=zero, cosine=zero,
                      masked_fraction=zero, flow_frames=ff, flow_actions=fa, keypoint_actions=kp)


def selfflow_inputs(
    batch: FlowBatch, cfg: ObjectiveConfig, generator: torch.Generator | None = None
) -> SelfFlowInputs:
    """Draw t, noise, s and the token mask, and build student and teacher inputs (docs/architecture.md,
    "Objectives")."""
    t, eps, clean, t_tokens = _draw_t_eps(batch, cfg, generator)
    b, n = batch.generated.shape
    device = batch.generated.device
    s = _sampler(cfg)(b, generator, device)  # (B,), independent of t, not sorted
    gen_device = generator.device if generator is not None else device
    u = torch.rand(b, n, generator=generator, device=gen_device).to(device)  # (B, N)
    is_action = batch.layout.token_kinds().to(device) == 2  # (N,)
    ratio = torch.where(is_action, cfg.mask_ratio_actions, cfg.mask_ratio_frames)  # (N,)
    masked = batch.generated & (u < ratio[None])
    one = clean[:, None]  # clean tokens' level, shared by student and teacher
    t_student = torch.where(batch.generated, torch.where(masked, s[:, None], t_tokens), one)  # (B, N)
    t_teacher = torch.where(batch.generated, torch.maximum(t_tokens, s[:, None]), one)  # (B, N)
    return SelfFlowInputs(
        x_student=interpolate(batch.x, eps, t_student),
        t_student=t_student,
        x_teacher=interpolate(batch.x, eps, t_teacher),
        t_teacher=t_teacher,
        eps=eps,
        masked=masked,
        t=t,
        s=s,
    )


def selfflow_loss(
    model: nn.Module,
    teacher: nn.Module,
    projector: nn.Module,
    batch: FlowBatch,
    cfg: ObjectiveConfig,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """Self-Flow: flow matching on dual-timestep inputs + gamma · (1 - cos) to an EMA teacher's deeper
    features.

    Args:
        model: the student ``VideoActionDiT``.
        teacher: the EMA copy (same architecture); run under ``no_grad``.
        projector: student-feature projector (D -> 2D -> D).
        batch: the batch.
        cfg: objective config.
        generator: source of t, noise, s and mask.
    """
    inp = selfflow_inputs(batch, cfg, generator)
    k_student, k_teacher = cfg.layers(model.cfg.depth)
    flow, ff, fa, kp, hidden = _flow_terms(model, batch, inp.x_student, inp.t_student, inp.eps, cfg, (k_student,))
    with torch.no_grad():
        target = teacher.features(
            inp.x_teacher, inp.t_teacher, batch.layout, batch.lang, k_teacher
        )  # (B, N, D)
    cos = F.cosine_similarity(projector(hidden[k_student]).float(), target.float(), dim=-1)  # (B, N)
    rep = _masked_mean(1 - cos, batch.generated)
    return LossOutput(
        total=flow + cfg.gamma * rep + cfg.keypoint_action_weight * kp,
        flow=flow,
        rep=rep,
        cosine=_masked_mean(cos.detach(), batch.generated),
        masked_fraction=_masked_mean(inp.masked.float(), batch.generated),
        flow_frames=ff,
        flow_actions=fa,
        keypoint_actions=kp,
    )


def training_loss(
    model: nn.Module,
    batch: FlowBatch,
    cfg: ObjectiveConfig,
    teacher: nn.Module | None = None,
    projector: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """The configured loss: :func:`selfflow_loss` when ``cfg.selfflow`` else :func:`flow_matching_loss`."""
    if not cfg.selfflow:
        return flow_matching_loss(model, batch, cfg, generator)
    if teacher is None or projector is None:
        raise ValueError("selfflow=True needs a teacher (EMA model) and a projector")
    return selfflow_loss(model, teacher, projector, batch, cfg, generator)
