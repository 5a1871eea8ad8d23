"""The progress head: task progress in [0, 1] of every frame of a clean clip, from the DiT's own hidden states.

The clip's frames go through the network as *clean* tokens (``t = 1``, no action tokens, the instruction in
the adaLN conditioning); the hidden states after ``block`` blocks are mean-pooled per frame and a small MLP reads
progress from them together with the language embedding. Attention across the clip's frames gives every frame
temporal context (a half-open drawer is progress for "open" and for "close" alike; the frames before it tell
which). Trained in fine-tuning on ``step / (episode length - 1)`` (the clips' ``progress``, see
:func:`worldmodel.objectives.progress.progress_loss`); the planner scores imagined futures with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from worldmodel.models.conditioning import Condition, as_condition
from worldmodel.models.layout import TokenLayout, Tokens, patchify


def default_block(depth: int) -> int:
    """The block whose output the head reads: ``round(0.7·depth)``, Self-Flow's teacher layer, the layer the
    representation loss shapes into features (docs/architecture.md, "Objectives")."""
    return max(1, min(depth, round(0.7 * depth)))


@dataclass(frozen=True)
class ProgressHeadConfig:
    """Shape of a :class:`ProgressHead` (saved with its weights).

    Attributes:
        hidden: D, the DiT's width.
        lang_dim: size of the language embedding.
        block: read the hidden states after this many DiT blocks (1..depth).
        width: the MLP's width.
    """

    hidden: int
    lang_dim: int = 512
    block: int = 3
    width: int = 256

    def __post_init__(self) -> None:
        for name in ("hidden", "lang_dim", "block", "width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"progress_head.{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_model(cls, model: nn.Module, **overrides: Any) -> ProgressHeadConfig:
        """The default head for a :class:`~worldmodel.models.VideoActionDiT` (``model.cfg``)."""
        cfg = model.cfg
        values = dict(hidden=cfg.hidden, lang_dim=cfg.lang_dim, block=default_block(cfg.depth),
                      width=max(64, min(256, cfg.hidden)))
        return cls(**{**values, **overrides})


class ProgressHead(nn.Module):
    """Per-frame progress logits from pooled hidden states and language.

    Args:
        config: the head's shape.
    """

    def __init__(self, config: ProgressHeadConfig) -> None:
        super().__init__()
        self.config = config
        d, w = config.hidden, config.width
        self.norm = nn.LayerNorm(d)
        self.lang = nn.Sequential(nn.Linear(config.lang_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.mlp = nn.Sequential(nn.Linear(2 * d, w), nn.SiLU(), nn.Linear(w, w), nn.SiLU(), nn.Linear(w, 1))

    @property
    def block(self) -> int:
        return self.config.block

    def forward(self, pooled: Tensor, lang: Tensor | Condition | None) -> Tensor:
        """Progress logits.

        Args:
            pooled: (B, T, D) per-frame mean-pooled hidden states (see :func:`clean_frame_states`).
            lang: (B, lang_dim) or a :class:`Condition` (its sentence embedding is used), or None (zeros).

        Returns:
            (B, T) logits; ``sigmoid`` gives progress in [0, 1].
        """
        b, t, _ = pooled.shape
        lang = as_condition(lang).lang
        if lang is None:
            lang = pooled.new_zeros(b, self.config.lang_dim)
        lang_d = self.lang(lang.to(pooled.dtype))[:, None].expand(b, t, -1)  # (B, T, D)
        return self.mlp(torch.cat([self.norm(pooled), lang_d], dim=-1)).squeeze(-1)


def clean_frame_states(model: nn.Module, frames: Tensor, lang: Tensor | Condition | None, block: int) -> Tensor:
    """Run a clip of clean frames through the first ``block`` DiT blocks and mean-pool every frame's patches.

    Args:
        model: a :class:`~worldmodel.models.VideoActionDiT`.
        frames: (B, T, C, H, W) in [-1, 1], H and W divisible by the patch.
        lang: (B, lang_dim), a :class:`Condition` (state tokens are left out: no frame is a context frame), or None.
        block: number of blocks to run (1..depth).

    Returns:
        (B, T, D) pooled hidden states.
    """
    b, t, _, h, w = frames.shape
    p = model.cfg.patch
    layout = TokenLayout(0, t, (h // p, w // p), has_actions=False)  # all frames clean: positions 0..T-1
    x = Tokens(patchify(frames, p))  # (B, T·h·w, P)
    ones = torch.ones(b, layout.num_tokens, device=frames.device)
    hidden = model.features(x, ones, layout, lang, block)  # (B, T·h·w, D)
    return hidden.view(b, t, layout.tokens_per_frame, -1).mean(2)  # (B, T, D)
