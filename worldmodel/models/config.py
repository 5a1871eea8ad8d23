"""Model configuration; the size presets are the files ``configs/model/<preset>.yaml`` (read by :data:`PRESETS`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from worldmodel.config_utils import from_mapping, load_preset, preset_names

PREDICTIONS = ("velocity", "x")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a :class:`~worldmodel.models.VideoActionDiT` and its default clip.

    Attributes:
        name: preset name (informational).
        hidden: D, token width.
        depth: number of transformer blocks.
        heads: attention heads; ``hidden / heads`` must be even and >= 6 (3-axis RoPE).
        mlp_ratio: MLP hidden width as a multiple of D.
        patch: patch side p in pixels.
        channels: C, image channels.
        action_dim: A, action size (7 for RT-1).
        lang_dim: size of the language embedding (512 for RT-1's Universal Sentence Encoder).
        frame_height: H of the default clip (any H divisible by ``patch`` works at run time).
        frame_width: W of the default clip.
        context_frames: K of the default clip.
        future_frames: F of the default clip (also the action chunk length).
        prediction: what the network outputs: ``velocity`` (v = x - eps) or ``x`` (clean data, as JiT).
        qk_norm: RMS-normalise queries and keys per head before attention (stabilises pixel-space training).
        rope_theta: RoPE base period.
        checkpointing: recompute each block in the backward pass (activation checkpointing).
        instruction_tokens: L, instruction tokens (per-wordpiece states of ``natural_language_instruction``)
            prepended as clean tokens; 0: the instruction reaches the model only as the sentence embedding.
        instruction_dim: E, width of those states (384 for the offline MiniLM encoder).
        state_dim: S, robot-state size of the one clean token per context frame (8: ``base_pose_tool_reached``
            xyz + quaternion and ``gripper_closed``); 0: no state tokens.
        future_frame_tokens: False builds an *action-only* model: the sequence holds the K context frames and F
            actions, no future frames, so it only has the ``policy`` verb (no imagination, no planning). It
            answers whether predicting the future helps the policy.
        frame_position: add a fixed 2-D sin-cos embedding of each patch's (row, col) to the frame tokens, on
            top of RoPE. RoPE only shapes attention *weights*, so the values an action token gathers say what
            is in a patch but not where it is; this puts the position into the values, which is what reaching
            for an object the image shows needs. Parameter-free, so any H x W still works.
        keypoints: P, spatial-softmax keypoints of every context frame (0: off). A small conv net maps the
            frame to P heat maps; each map's softmax-weighted mean (x, y) is one keypoint, and the 2P coordinates
            become one clean token per context frame (as the state tokens). Coordinates of what the net learns to
            find, e.g. the object to grasp, the classic visuomotor inductive bias (Levine et al. 2016, robomimic).
        keypoint_film: also feed the latest context frame's keypoints into every token's adaLN conditioning (as
            the instruction's FiLM path), not only as a token reached through attention. Needs ``keypoints``.
        keypoint_head: a small MLP that reads the latest context frame's keypoints *alone* and predicts the
            clean action chunk (F x A). Trained only as an auxiliary regression (``objective.keypoint_action_weight``)
            and unused at sampling: it gives the keypoint net the direct, low-noise signal of behaviour cloning
            from pixels, so the keypoints come to say where the object is before the denoiser learns to read
            them (docs/experiments.md, fifth session). Needs ``keypoints``.
        keypoint_language: the instruction (sentence embedding, and the instruction tokens when there are any)
            FiLMs the keypoint net's features before its heat maps and shifts the keypoint head's hidden layer, so
            the keypoints can follow the object or drawer the instruction names rather than the one most tasks
            reward (docs/experiments.md, sixth session). Needs ``keypoints``.
    """

    name: str = "custom"
    hidden: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    patch: int = 16
    channels: int = 3
    action_dim: int = 7
    lang_dim: int = 512
    frame_height: int = 64
    frame_width: int = 80
    context_frames: int = 1
    future_frames: int = 2
    prediction: str = "x"
    qk_norm: bool = True
    rope_theta: float = 100.0
    checkpointing: bool = False
    instruction_tokens: int = 0
    instruction_dim: int = 384
    state_dim: int = 0
    future_frame_tokens: bool = True
    frame_position: bool = False
    keypoints: int = 0
    keypoint_film: bool = False
    keypoint_head: bool = False
    keypoint_language: bool = False

    def __post_init__(self) -> None:
        positive = (
            "hidden",
            "depth",
            "heads",
            "patch",
            "channels",
            "action_dim",
            "lang_dim",
            "frame_height",
            "frame_width",
            "future_frames",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("context_frames", "instruction_tokens", "state_dim", "keypoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.instruction_dim < 1:
            raise ValueError(f"instruction_dim must be >= 1, got {self.instruction_dim}")
        for name in ("keypoint_film", "keypoint_head", "keypoint_language"):
            if getattr(self, name) and not self.keypoints:
                raise ValueError(f"{name} needs keypoints > 0")
        if self.frame_position and self.hidden % 4:
            raise ValueError(f"frame_position needs hidden divisible by 4, got {self.hidden}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        head_dim = self.hidden // self.heads
        if head_dim % 2 or head_dim < 6:
            raise ValueError(f"hidden / heads must be even and >= 6 for 3-axis RoPE, got {head_dim}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.frame_height % self.patch or self.frame_width % self.patch:
            raise ValueError(
                f"frame_height/frame_width ({self.frame_height}x{self.frame_width}) must be divisible "
                f"by patch ({self.patch})"
            )
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.rope_theta <= 1:
            raise ValueError(f"rope_theta must be > 1, got {self.rope_theta}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def patch_dim(self) -> int:
        """P = p·p·C."""
        return self.patch * self.patch * self.channels

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) patches per frame of the default clip."""
        return self.frame_height // self.patch, self.frame_width // self.patch

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a plain mapping (e.g. an OmegaConf node); unknown keys raise ValueError."""
        return from_mapping(cls, values, "model")


class _Presets(Mapping[str, ModelConfig]):
    """The size presets, read from ``configs/model/*.yaml`` on first use (the files are the only copy).

    ``tiny`` (unit tests), ``demo`` (the CPU demo, sized by measurement: docs/model.md), and DiT's ``S``, ``B``,
    ``L``, ``XL`` widths and depths at RT-1 resolution (256x320, 16x16 patches: 320 tokens per frame).
    """

    def __init__(self) -> None:
        self._cache: dict[str, ModelConfig] = {}

    def _load(self) -> dict[str, ModelConfig]:
        if not self._cache:
            self._cache = {name: ModelConfig(**load_preset("model", name)) for name in preset_names("model")}
        return self._cache

    def __getitem__(self, name: str) -> ModelConfig:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


PRESETS: Mapping[str, ModelConfig] = _Presets()


def get_config(preset: str, **overrides: Any) -> ModelConfig:
    """A preset's config with field overrides, e.g. ``get_config("S", depth=8)``."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    known = {f.name for f in fields(ModelConfig)}
    for key in overrides:
        if key not in known:
            raise ValueError(f"unknown model config key {key!r}; allowed: {sorted(known)}")
    return replace(PRESETS[preset], **overrides)
