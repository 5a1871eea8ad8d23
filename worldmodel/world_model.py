"""``WorldModel``: a trained ``VideoActionDiT`` behind four small verbs in env units (docs/architecture.md,
"The four verbs" and "Planning").

* ``propose(frames, language, n, steps)``: ``policy`` verb: n action chunks (RT-1 units) and the futures the
  model imagined jointly with them;
* ``imagine(frames, language, actions, steps)``: ``dynamics`` verb: the futures of given action chunks;
* ``progress(frames, language)``: task progress in [0, 1] of every frame of a clip (the progress head);
* ``features(frames)``: the model's own representation of single frames.

Frames go in and come out as uint8 ``(..., H, W, 3)`` at the env's resolution and are resized to the model's
inside. Actions go in and come out in RT-1 units, normalised with the checkpoint's :class:`ActionStats` on the
way in and un-normalised (then clipped to the env's action bounds) on the way out. Horizons longer than the
model's trained chunk ``F`` are rolled out chunk by chunk, each chunk conditioned on the last K frames so far.
Every verb runs under ``torch.no_grad`` and draws its noise from a ``torch.Generator`` (the model's own,
seeded by :meth:`WorldModel.seed`, unless one is passed), so equal seeds give equal outputs.

The ``*_model`` methods are the same verbs in model space (frames (B, T, C, h, w) in [-1, 1], normalised
actions); the planner's callables (:func:`worldmodel.planner.world_model_fns`) use those.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.data.reader import episode_states
from worldmodel.data.stats import ActionStats
from worldmodel.io import (  # noqa: F401  (PROGRESS_FILE: re-exported for callers)
    ACTION_HIGH,
    ACTION_LOW,
    PROGRESS_FILE,
    load_checkpoint,
    model_to_pixels,
    pixels_to_model,
)
from worldmodel.models.conditioning import Condition, as_condition
from worldmodel.models.progress import ProgressHead, ProgressHeadConfig, clean_frame_states, default_block
from worldmodel.objectives.sampling import GenerationContext, generate
from worldmodel.validation import check_frames, check_language


def _text(text: Any) -> str:
    """An instruction as str, from str, bytes (RLDS) or a one-element numpy array of either."""
    if isinstance(text, np.ndarray):
        text = text.reshape(-1)[0]
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


@dataclass
class Proposal:
    """Output of :meth:`WorldModel.propose`.

    Attributes:
        actions: (n, T, 7) float32 in RT-1 units (leading (B,) for batched contexts).
        frames: (n, T, H, W, 3) uint8, the futures imagined jointly with the actions.
    """

    actions: np.ndarray
    frames: np.ndarray


class WorldModel:
    """A trained network, its action statistics and config, with batched, seeded verbs.

    Args:
        model: the network (put in eval mode; its device is the world model's device).
        stats: action normalisation (None only for video-only checkpoints, which cannot take actions).
        config: the run's resolved config (informational; e.g. ``config.data``).
        progress_head: the trained progress head, or None (``progress`` then raises).
        action_low, action_high: (7,) bounds that output actions are clipped to (default: the env's).
        seed: seed of the default generator.
    """

    def __init__(self, model: nn.Module, stats: ActionStats | None, config: Any = None,
                 progress_head: ProgressHead | None = None, action_low: np.ndarray = ACTION_LOW,
                 action_high: np.ndarray = ACTION_HIGH, seed: int = 0) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cfg = model.cfg
        if self.cfg.context_frames < 1:
            raise ValueError(f"a world model needs context_frames >= 1, got {self.cfg.context_frames}")
        self.stats, self.config = stats, config
        self.device = next(model.parameters()).device
        self.progress_head = None if progress_head is None else progress_head.to(self.device).eval()
        if self.progress_head is not None:
            self.progress_head.requires_grad_(False)
        self.feature_block = default_block(self.cfg.depth)
        self.action_low = np.asarray(action_low, np.float32)
        self.action_high = np.asarray(action_high, np.float32)
        self.generator = torch.Generator(device="cpu")
        self.seed(seed)

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", ema: bool = True,
                        seed: int = 0) -> WorldModel:
        """Load a world model from a training checkpoint.

        Uses :func:`worldmodel.io.load_checkpoint` (weights, resolved config, action statistics) and, when
        the checkpoint holds one, the progress head: ``progress.safetensors`` plus ``meta["progress_head"]``
        (a :class:`ProgressHeadConfig` dict).

        Args:
            path: a checkpoint directory or a run directory (its latest checkpoint).
            device: where to run.
            ema: use the EMA weights (recommended) instead of the raw student weights.
            seed: seed of the default generator.
        """
        loaded = load_checkpoint(path, ema=ema, device=device)  # loads the head when both files are present
        return cls(loaded.model, loaded.action_stats, loaded.config, loaded.progress_head, seed=seed).to(device)

    @classmethod
    def random(cls, preset: str = "tiny", seed: int = 0, stats: ActionStats | None = None,
               progress_head: bool = True, device: str | torch.device = "cpu", **overrides: Any) -> WorldModel:
        """An untrained world model for tests and timing: a preset with random weights, its zero-initialised
        adaLN and output layers randomised too (so that outputs depend on the inputs), a random progress head,
        and placeholder action statistics (half the env's bounds on the arm dims) unless ``stats`` is given.

        Args:
            preset: model preset (``tiny``, ``demo``, ``S``, ..., ``XL``).
            seed: seeds the weights and the default generator.
            stats: action statistics (default: the placeholder).
            progress_head: attach a (random) progress head.
            device: where to build it.
            **overrides: model config overrides.
        """
        from worldmodel.models import build_model

        torch.manual_seed(seed)
        with torch.device(device):
            model = build_model(preset, **overrides)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if ("ada" in name or "head" in name) and p.ndim == 2:
                        p.normal_(0.0, 0.3 / math.sqrt(p.shape[1] / 64))
            head = ProgressHead(ProgressHeadConfig.for_model(model)) if progress_head else None
        if stats is None:
            half = 0.5 * ACTION_HIGH.astype(np.float64)
            stats = ActionStats(q01=[*(-half[:6]), -1.0], q99=[*half[:6], 1.0], mean=[0.0] * 7,
                                std=[*(half[:6] / 2), 1.0], min=[*(-half[:6]), -1.0], max=[*half[:6], 1.0], count=0,
                                source={"placeholder": True})
        return cls(model, stats, None, head, seed=seed)

    def to(self, device: str | torch.device) -> WorldModel:
        """Move the network (and head) to ``device``; returns self."""
        self.model.to(device)
        if self.progress_head is not None:
            self.progress_head.to(device)
        self.device = next(self.model.parameters()).device
        return self

    def seed(self, seed: int) -> None:
        """Re-seed the default generator of the verbs."""
        self.generator.manual_seed(int(seed))

    @property
    def context_frames(self) -> int:
        """K, frames of context the model conditions on."""
        return self.cfg.context_frames

    @property
    def imagines(self) -> bool:
        """Whether the model predicts future frames (False for an action-only model)."""
        return self.cfg.future_frame_tokens

    @property
    def has_progress(self) -> bool:
        return self.progress_head is not None

    # ------------------------------------------------------------------------------------ pixels, actions
    def encode_frames(self, frames: Any) -> Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, h, w) in [-1, 1] at the model's resolution, on its device."""
        x = torch.as_tensor(np.asarray(frames), device=self.device)
        if x.dtype != torch.uint8 or x.ndim < 3 or x.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (..., H, W, 3), got {x.dtype} {tuple(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"frames must hold at least one non-empty image, got shape {tuple(x.shape)}")
        lead = x.shape[:-3]
        x = pixels_to_model(x.reshape(-1, *x.shape[-3:]))  # (M, 3, H, W)
        size = (self.cfg.frame_height, self.cfg.frame_width)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return x.reshape(*lead, 3, *size)

    def decode_frames(self, frames: Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
        """float (..., 3, h, w) in [-1, 1] -> uint8 (..., H, W, 3) numpy, resized to ``size`` = (H, W)."""
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).float()
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        x = model_to_pixels(x)  # (M, H, W, 3)
        return x.reshape(*lead, *x.shape[1:])

    def context(self, frames: Any) -> Tensor:
        """Model-space context (B, K, 3, h, w) from uint8 (K', H, W, 3) or (B, K', H, W, 3) frames: the last K
        frames, the first one repeated when fewer than K are given (the start of an episode)."""
        x = self.encode_frames(check_frames(frames))
        if x.ndim == 4:
            x = x[None]
        k = self.context_frames
        if x.shape[1] < k:
            x = torch.cat([x[:, :1].expand(-1, k - x.shape[1], -1, -1, -1), x], dim=1)
        return x[:, -k:]

    def embed_language(self, language: Any, batch: int) -> Condition:
        """What the model is conditioned on, for ``batch`` samples.

        Args:
            language: one of
                * a (lang_dim,) or (B, lang_dim) sentence embedding (``natural_language_embedding``): the
                  sentence only, no instruction tokens or state;
                * an instruction string: its sentence embedding and instruction tokens (offline encoder);
                * an observation mapping (what the env returns, or a dict with the same keys):
                  ``natural_language_embedding``, ``natural_language_instruction`` (for instruction tokens),
                  ``base_pose_tool_reached`` and ``gripper_closed`` (each (S_i,) for the latest frame or
                  (K', S_i) for the context frames, oldest first) for the state tokens;
                * a :class:`~worldmodel.models.Condition` (model space, used as is).
            batch: B.

        Returns:
            :class:`~worldmodel.models.Condition` on the device, batch B (parts the model was not built for
            are left out).
        """
        if isinstance(language, Condition):
            cond = language
        elif isinstance(language, (str, bytes)):
            from worldmodel.language import embed_instruction

            text = language.decode() if isinstance(language, bytes) else language
            cond = Condition(self._sentence(embed_instruction(text)), self._instruction(text))
        elif isinstance(language, Mapping):
            text = language.get("natural_language_instruction")
            lang = language.get("natural_language_embedding")
            if lang is None and text is None:
                raise ValueError("language: an observation needs natural_language_embedding or "
                                 f"natural_language_instruction, got keys {sorted(language)}")
            text = None if text is None else _text(text)
            if lang is None:
                from worldmodel.language import embed_instruction

                lang = embed_instruction(text)
            cond = Condition(None if lang is None else self._sentence(lang),
                             None if text is None else self._instruction(text), self._state(language))
        else:
            cond = Condition(self._sentence(language))
        b = cond.batch_size
        if b is not None and b != batch:
            if b != 1:
                raise ValueError(f"language conditions {b} samples but {batch} are asked for")
            cond = cond.expand(batch)
        return cond.to(self.device)

    def _sentence(self, language: Any) -> Tensor:
        """(lang_dim,) or (B, lang_dim) -> (B, lang_dim); ValueError naming ``language`` unless finite, right size."""
        lang = torch.as_tensor(check_language(language, self.cfg.lang_dim), device=self.device)
        return lang.reshape(-1, lang.shape[-1]) if lang.ndim == 1 else lang

    def _instruction(self, text: Any) -> Tensor | None:
        if not self.cfg.instruction_tokens:
            return None
        from worldmodel.language import instruction_tokens

        return torch.from_numpy(instruction_tokens(_text(text), self.cfg.instruction_tokens))[None]  # (1, L, E)

    def _state(self, obs: Mapping[str, Any]) -> Tensor | None:
        """Normalised state (1, K, S) of the last K frames (the first repeated when fewer), or None."""
        if not self.cfg.state_dim or "base_pose_tool_reached" not in obs or "gripper_closed" not in obs:
            return None
        if self.stats is None or not self.stats.has_state:
            raise ValueError("this world model has state tokens but its statistics hold no state moments")
        pose, grip = np.shape(obs["base_pose_tool_reached"]), np.shape(obs["gripper_closed"])
        if pose[-1:] != (7,) or grip[-1:] != (1,) or int(np.prod(pose)) // 7 != int(np.prod(grip)):
            raise ValueError(f"base_pose_tool_reached must be (7,) or (K, 7) and gripper_closed (1,) or (K, 1) for "
                             f"the same K, got {pose} and {grip}")
        state = episode_states(obs)  # (K', 8), the same stacking as the training clips
        if not np.isfinite(state).all():
            raise ValueError("base_pose_tool_reached / gripper_closed hold non-finite values (NaN/inf)")
        k = self.context_frames
        if len(state) < k:
            state = np.concatenate([np.repeat(state[:1], k - len(state), 0), state])
        return torch.from_numpy(self.stats.normalize_state(state[-k:]))[None]  # (1, K, S)

    def normalize(self, actions: Tensor) -> Tensor:
        """RT-1 units -> model space (..., 7) (see :class:`ActionStats`)."""
        if self.stats is None:
            raise ValueError("this world model has no action statistics (a video-only checkpoint): it cannot "
                             "take or produce actions")
        return self.stats.normalize(actions.float())

    def unnormalize(self, actions: Tensor) -> Tensor:
        """Model space -> RT-1 units clipped to the env's action bounds (..., 7)."""
        if self.stats is None:
            raise ValueError("this world model has no action statistics (a video-only checkpoint)")
        out = self.stats.unnormalize(actions.float().clamp(-1, 1))
        low = torch.as_tensor(self.action_low, device=out.device)
        return torch.minimum(torch.maximum(out, low), torch.as_tensor(self.action_high, device=out.device))

    # ------------------------------------------------------------------------------- model-space verbs
    @torch.no_grad()
    def rollout_model(self, context: Tensor, lang: Tensor | Condition, horizon: int, steps: int,
                      generator: torch.Generator | None = None, actions: Tensor | None = None,
                      guidance: float = 1.0, temperature: float = 1.0,
                      shared_noise: bool = False) -> tuple[Tensor, Tensor]:
        """``policy`` (actions None) or ``dynamics`` rollout in model space, chunk by chunk.

        The robot state, known only for the real context, conditions the first chunk; later chunks, whose
        context is imagined, go without state tokens.

        Args:
            context: (B, K, 3, h, w) in [-1, 1].
            lang: (B, lang_dim) or a :class:`~worldmodel.models.Condition` of batch B.
            horizon: T.
            steps: sampler steps per chunk.
            generator: noise source (default: the world model's).
            actions: (B, T, 7) normalised actions for ``dynamics``.
            guidance: classifier-free guidance scale on the language (1: off).
            temperature: scale of the sampled actions' initial noise (1: off; ``policy`` only).
            shared_noise: every row of the batch starts from the same noise (common random numbers): for
                ``dynamics`` of N chunks from one context, their futures then differ only by their actions.

        Returns:
            actions (B, T, 7) normalised (the given ones for ``dynamics``), frames (B, T, 3, h, w) in [-1, 1].
        """
        gen = self.generator if generator is None else generator
        cond = as_condition(lang)
        chunk, k = self.cfg.future_frames, self.context_frames
        if not self.imagines and (actions is not None or horizon > chunk):
            raise ValueError("an action-only model (future_frame_tokens=false) proposes one chunk of at most "
                             f"{chunk} actions and cannot imagine futures")
        frames_out, actions_out, cur = [], [], context
        for start in range(0, horizon, chunk):
            f = min(chunk, horizon - start)
            if actions is None:
                res = generate(self.model, "policy",
                               GenerationContext(cur, f, None, cond, guidance, temperature, shared_noise), steps, gen)
                actions_out.append(res.actions.clamp(-1, 1))
            else:
                given = actions[:, start:start + f]
                res = generate(self.model, "dynamics",
                               GenerationContext(cur, f, given, cond, guidance, shared_noise=shared_noise), steps, gen)
                actions_out.append(given)
            # an action-only model imagines nothing: its "future" is shown black
            frames = res.frames.clamp(-1, 1) if res.frames is not None else \
                -cur.new_ones(cur.shape[0], f, *cur.shape[2:])
            frames_out.append(frames)
            cur = torch.cat([cur, frames], dim=1)[:, -k:]
            cond = replace(cond, state=None)
        return torch.cat(actions_out, dim=1), torch.cat(frames_out, dim=1)

    @torch.no_grad()
    def progress_model(self, frames: Tensor, lang: Tensor) -> Tensor:
        """Progress in [0, 1] of every frame of clips (B, T, 3, h, w) -> (B, T)."""
        if self.progress_head is None:
            raise RuntimeError("this world model has no progress head (the checkpoint was trained without one)")
        pooled = clean_frame_states(self.model, frames, lang, self.progress_head.block)
        return torch.sigmoid(self.progress_head(pooled, lang))

    @torch.no_grad()
    def features_model(self, frames: Tensor, lang: Tensor | None = None) -> Tensor:
        """Features (B, D) of single frames (B, 3, h, w): each frame alone as a clean clip, mean-pooled hidden
        states after ``round(0.7·depth)`` blocks (Self-Flow's teacher layer)."""
        return clean_frame_states(self.model, frames[:, None], lang, self.feature_block)[:, 0]

    # ---------------------------------------------------------------------------------- public verbs
    def propose(self, frames: Any, language: Any, n: int = 16, steps: int = 4, horizon: int | None = None,
                generator: torch.Generator | None = None, guidance: float = 1.0, temperature: float = 1.0) -> Proposal:
        """Sample ``n`` action chunks with the ``policy`` verb, with the futures imagined jointly.

        Args:
            frames: (K', H, W, 3) uint8 context (or (B, K', H, W, 3)); the last K frames are used.
            language: what to condition on (see :meth:`embed_language`): a (512,) sentence embedding (or
                (B, 512)), an instruction string, or the env's observation (instruction tokens and robot state).
            n: chunks per context.
            steps: sampler steps.
            horizon: T (default: the model's F).
            generator: noise source (default: the world model's).
            guidance: classifier-free guidance scale on the language (1: off; needs a model trained with
                ``objective.language_dropout``).
            temperature: scale of the actions' initial noise (1: the learned distribution; < 1 concentrates the
                chunks towards the most likely one).

        Returns:
            :class:`Proposal` with actions (n, T, 7) in RT-1 units and frames (n, T, H, W, 3) uint8 (a leading
            B for batched contexts).
        """
        arr = np.asarray(frames)
        ctx = self.context(arr)  # (B, K, 3, h, w)
        b = ctx.shape[0]
        lang = self.embed_language(language, b).repeat_interleave(n)
        acts, futs = self.rollout_model(ctx.repeat_interleave(n, 0), lang, horizon or self.cfg.future_frames,
                                        steps, generator, guidance=guidance, temperature=temperature)
        lead = (n,) if arr.ndim == 4 else (b, n)
        actions = self.unnormalize(acts).cpu().numpy().astype(np.float32)
        out_frames = self.decode_frames(futs, arr.shape[-3:-1])
        return Proposal(actions.reshape(*lead, *actions.shape[1:]), out_frames.reshape(*lead, *out_frames.shape[1:]))

    def imagine(self, frames: Any, language: Any, actions: Any, steps: int = 4,
                generator: torch.Generator | None = None, shared_noise: bool = False) -> np.ndarray:
        """The futures of action chunks (``dynamics`` verb).

        Args:
            frames: (K', H, W, 3) uint8 context.
            language: what to condition on (see :meth:`embed_language`).
            actions: (n, T, 7) or (T, 7) in RT-1 units.
            steps: sampler steps.
            generator: noise source (default: the world model's).
            shared_noise: imagine every chunk from the same noise (common random numbers: the futures then
                differ only by their actions, as a planner comparing them wants).

        Returns:
            (n, T, H, W, 3) uint8 (or (T, H, W, 3) for a single chunk).
        """
        arr = np.asarray(frames)
        acts = torch.as_tensor(np.asarray(actions, np.float32), device=self.device)
        single = acts.ndim == 2
        acts = acts[None] if single else acts  # (n, T, 7)
        n = acts.shape[0]
        ctx = self.context(arr).expand(n, -1, -1, -1, -1)
        _, futs = self.rollout_model(ctx, self.embed_language(language, n), acts.shape[1], steps, generator,
                                     self.normalize(acts), shared_noise=shared_noise)
        out = self.decode_frames(futs, arr.shape[-3:-1])
        return out[0] if single else out

    def progress(self, frames: Any, language: Any) -> np.ndarray:
        """Predicted task progress of every frame of a clip.

        Args:
            frames: (T, H, W, 3) uint8 (or (B, T, H, W, 3)), in time order.
            language: what to condition on (see :meth:`embed_language`).

        Returns:
            (T,) (or (B, T)) float32 in [0, 1].
        """
        x = self.encode_frames(check_frames(frames))
        single = x.ndim == 4
        x = x[None] if single else x
        out = self.progress_model(x, self.embed_language(language, x.shape[0])).cpu().numpy().astype(np.float32)
        return out[0] if single else out

    def features(self, frames: Any, language: Any = None) -> np.ndarray:
        """The model's own representation of frames (for goal distances).

        Args:
            frames: (..., H, W, 3) uint8.
            language: optional (512,) embedding to condition on (None: unconditional).

        Returns:
            (..., D) float32.
        """
        x = self.encode_frames(frames)
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        lang = None if language is None else self.embed_language(language, flat.shape[0])
        feats = self.features_model(flat, lang).cpu().numpy().astype(np.float32)
        return feats.reshape(*lead, feats.shape[-1])

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return (f"WorldModel({self.cfg.name}, {params / 1e6:.2f}M params, K={self.context_frames}, "
                f"F={self.cfg.future_frames}, {self.cfg.frame_height}x{self.cfg.frame_width}, "
                f"progress_head={self.has_progress}, device={self.device})")
