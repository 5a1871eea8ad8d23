"""Objective configuration (mirrored by ``configs/objective/{selfflow,fm}.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worldmodel.config_utils import from_mapping

TIME_SAMPLERS = ("uniform", "logit_normal")
ACTION_LOSSES = ("velocity", "x")


def _default_verbs() -> dict[str, float]:
    return {"policy": 0.4, "dynamics": 0.4, "inverse": 0.2}


@dataclass(frozen=True)
class ObjectiveConfig:
    """Flow matching with optional Self-Flow (docs/architecture.md, "Objectives"); ``selfflow=False`` is exactly
    vanilla flow matching.

    Attributes:
        selfflow: add the Self-Flow representation loss (dual timesteps + EMA teacher).
        time_sampler: ``uniform`` or ``logit_normal`` for the per-sample training time t (1 = clean).
        time_mean: logit-normal mean of logit(t); negative means noisier (JiT uses -0.8).
        time_std: logit-normal std.
        time_shift: resolution shift s >= 1 applied to the noise level 1 - t as in SD3
            (``sigma' = s·sigma / (1 + (s - 1)·sigma)``); 1 = none. See :func:`resolution_shift`.
        mask_ratio_frames: Self-Flow R_M for generated frame tokens (0.1 video, 0.25 images in the paper).
        mask_ratio_actions: Self-Flow R_M for generated action tokens.
        gamma: weight of the representation loss.
        student_layer_frac: student features after block ``round(frac·depth)``.
        teacher_layer_frac: teacher features after block ``round(frac·depth)``.
        ema_decay: EMA decay of the teacher / evaluation weights.
        ema_warmup: use ``min(decay, (1 + n) / (10 + n))`` after n updates.
        action_weight: flow loss = frame-token MSE + action_weight · action-token MSE (each averaged over the
            generated tokens of that modality).
        x_pred_min_gap: when the model predicts x, velocity = (x_pred - x_t) / max(1 - t, gap) in training
            (JiT).
        action_loss: what the action term measures: ``velocity`` (the velocity MSE, as the frames) or ``x`` (the
            MSE of the predicted clean actions, i.e. the velocity MSE weighted by (1 - t)²). The velocity loss of an
            x-predicting model weights a nearly clean sample up to 1 / gap² times more than a noisy one, yet only
            the noisy ones teach the policy what the image says (near t = 1 the noisy action gives itself away);
            ``x`` weights them evenly (docs/experiments.md, fourth session).
        keypoint_action_weight: weight of the auxiliary behaviour-cloning term: the MSE of the model's
            ``keypoint_head`` (latest context frame's keypoints alone -> clean action chunk) on every sample with
            actions. 0 = off; > 0 needs ``model.keypoint_head``.
        verb_probs: probabilities of policy / dynamics / inverse for samples with actions.
        context_noise: clean (given) tokens get t ~ U[1 - context_noise, 1] per sample in training, the paper's
            light noising of conditioning frames; 0 keeps them exactly clean. Sampling always uses t = 1.
        language_dropout: probability per training sample of dropping its language (sentence embedding and
            instruction tokens, not the robot state), so the same network also learns the unconditional model
            that classifier-free guidance needs at sampling.
        motion_weight: weight the frame loss towards what moves: each generated frame token's squared error counts
            ``1 + motion_weight · m / mean(m)``, ``m`` being its patch's mean absolute change from the same patch of
            the last context frame (the mean over the batch's generated frame tokens). The arm covers a few of a
            frame's patches, so an unweighted loss is mostly won by copying the context, and a model can learn
            dynamics that ignore the action (twelfth session, ``scripts/probe_dynamics.py``). 0 = off.
        policy_frame_weight: weight of the future-frame loss on ``policy`` examples (those that generate frames and
            actions together) against 1 on ``dynamics`` / ``video`` examples; the frame term is the weighted mean.
            At 1 every verb's frames count alike; below 1 the frames are learned mostly where the actions are
            given, so that the policy's frame predictions (made without the actions) stop pulling the network
            towards futures that ignore the action (twelfth session: dynamics-only training learns the action,
            the policy-heavy mix does not; docs/experiments.md).
        independent_action_time: on ``policy`` examples (those that generate frames and actions together), draw the
            actions' time from the same sampler independently of the frames' (as UWM does) instead of sharing one
            t. Then many policy examples carry nearly clean actions beside noisy frames and teach the frames to read
            the action, as ``dynamics`` examples do, where a shared t always hides the action exactly as much as the
            frames (twelfth session: the policy-heavy mix leaves the dynamics blind to the action). Sampling is
            unchanged (the joint sample keeps one t: the diagonal of what is trained). False = one t per sample.
            Measured (thirteenth session): no help — the dynamics stays blind (−0.02 on the probe).
        state_dropout: probability per training sample (with actions) of leaving out its robot-state tokens.
            With the arm starting from nearly the same pose, the current pose already says where the arm has
            been heading, so a policy can copy that heading from the state instead of finding the object in the
            image (the "copycat" failure of behaviour cloning); without the state it has to look.
    """

    selfflow: bool = True
    time_sampler: str = "logit_normal"
    time_mean: float = 0.0
    time_std: float = 1.0
    time_shift: float = 1.0
    mask_ratio_frames: float = 0.1
    mask_ratio_actions: float = 0.1
    gamma: float = 0.8
    student_layer_frac: float = 0.3
    teacher_layer_frac: float = 0.7
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    action_weight: float = 1.0
    x_pred_min_gap: float = 0.05
    action_loss: str = "velocity"
    keypoint_action_weight: float = 0.0
    verb_probs: dict[str, float] = field(default_factory=_default_verbs)
    context_noise: float = 0.0
    language_dropout: float = 0.0
    state_dropout: float = 0.0
    motion_weight: float = 0.0
    policy_frame_weight: float = 1.0
    independent_action_time: bool = False

    def __post_init__(self) -> None:
        if self.time_sampler not in TIME_SAMPLERS:
            raise ValueError(f"time_sampler must be one of {TIME_SAMPLERS}, got {self.time_sampler!r}")
        if self.action_loss not in ACTION_LOSSES:
            raise ValueError(f"action_loss must be one of {ACTION_LOSSES}, got {self.action_loss!r}")
        if self.time_std <= 0:
            raise ValueError(f"time_std must be > 0, got {self.time_std}")
        if self.time_shift <= 0:
            raise ValueError(f"time_shift must be > 0, got {self.time_shift}")
        if not 0.0 <= self.context_noise < 1.0:
            raise ValueError(f"context_noise must be in [0, 1), got {self.context_noise}")
        for name in ("mask_ratio_frames", "mask_ratio_actions", "ema_decay", "language_dropout", "state_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("student_layer_frac", "teacher_layer_frac"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("gamma", "action_weight", "keypoint_action_weight", "motion_weight", "policy_frame_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.x_pred_min_gap < 1.0:
            raise ValueError(f"x_pred_min_gap must be in (0, 1), got {self.x_pred_min_gap}")
        object.__setattr__(self, "verb_probs", dict(self.verb_probs))

    def layers(self, depth: int) -> tuple[int, int]:
        """(student, teacher) block counts for a model of this depth, rounding half up, each in 1..depth."""

        def pick(frac: float) -> int:
            return min(depth, max(1, int(frac * depth + 0.5)))

        return pick(self.student_layer_frac), pick(self.teacher_layer_frac)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ObjectiveConfig:
        """Build from a plain mapping (e.g. an OmegaConf node); unknown keys raise ValueError."""
        return from_mapping(cls, values, "objective")
