"""Token layout of one sample and the four verbs (docs/architecture.md, "The four verbs").

A sample is one token sequence: the patches of ``K`` context frames and ``F`` future frames (frame-major,
then row, then column), followed by ``F`` action tokens when the sample has actions (action ``i`` moves
frame ``K - 1 + i`` to frame ``K + i``). A *verb* says which of these tokens are clean
(given, ``t = 1``) and which are generated:

========== ========================== ==========================
verb       clean tokens               generated tokens
========== ========================== ==========================
policy     context frames             future frames + actions
dynamics   context frames + actions   future frames
inverse    all frames                 actions
video      context frames             future frames (no actions)
========== ========================== ==========================

Frames are handled in patch space: :func:`patchify` turns ``(B, T, C, H, W)`` pixels into
``(B, T·h·w, p·p·C)`` tokens and :func:`unpatchify` inverts it exactly, so paths, losses and samplers
can work per token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

VERBS: tuple[str, ...] = ("policy", "dynamics", "inverse", "video")
ACTION_VERBS: tuple[str, ...] = ("policy", "dynamics", "inverse")


@dataclass(frozen=True)
class TokenLayout:
    """Shape of one sample's token sequence.

    Attributes:
        context_frames: K, frames given as context.
        future_frames: F, frames to predict (and number of action tokens when ``has_actions``).
        grid: (h, w) patches per frame, i.e. (H / patch, W / patch).
        has_actions: whether the sequence ends with F action tokens.
        future_frame_tokens: whether the F future frames are tokens of the sequence; False is an action-only
            model (K context frames, then F actions): it can only run the ``policy`` verb, without imagining.
    """

    context_frames: int
    future_frames: int
    grid: tuple[int, int]
    has_actions: bool = True
    future_frame_tokens: bool = True

    def __post_init__(self) -> None:
        if self.context_frames < 0:
            raise ValueError(f"context_frames must be >= 0, got {self.context_frames}")
        if self.future_frames < 1:
            raise ValueError(f"future_frames must be >= 1, got {self.future_frames}")
        if min(self.grid) < 1:
            raise ValueError(f"grid must be positive, got {self.grid}")
        if not self.future_frame_tokens and not self.has_actions:
            raise ValueError("a layout without future-frame tokens needs action tokens")

    @property
    def num_frames(self) -> int:
        """Frames in the sequence: T = K + F, or K for an action-only layout."""
        return self.context_frames + (self.future_frames if self.future_frame_tokens else 0)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_frame_tokens(self) -> int:
        """Nf = T·h·w."""
        return self.num_frames * self.tokens_per_frame

    @property
    def num_action_tokens(self) -> int:
        """Na = F when the sample has actions, else 0."""
        return self.future_frames if self.has_actions else 0

    @property
    def num_tokens(self) -> int:
        """N = Nf + Na."""
        return self.num_frame_tokens + self.num_action_tokens

    def token_kinds(self) -> Tensor:
        """Per-token kind: 0 context frame, 1 future frame, 2 action. Returns long tensor (N,)."""
        nc = self.context_frames * self.tokens_per_frame
        nf = (self.num_frames - self.context_frames) * self.tokens_per_frame
        return torch.cat([torch.zeros(nc), torch.ones(nf), torch.full((self.num_action_tokens,), 2.0)]).long()

    def positions(self) -> Tensor:
        """(time, row, col) position of every token, float (N, 3).

        Frame patches sit at their integer (frame, row, col). Action ``i`` sits between the two frames it
        links (time ``K - 1 + i + 0.5``) at the centre of the grid, so relative positions say which transition
        it is.
        """
        t_idx, r_idx, c_idx = torch.meshgrid(
            torch.arange(self.num_frames),
            torch.arange(self.grid[0]),
            torch.arange(self.grid[1]),
            indexing="ij",
        )
        frames = torch.stack([t_idx, r_idx, c_idx], dim=-1).reshape(-1, 3).float()  # (Nf, 3)
        a = self.num_action_tokens
        actions = torch.stack(
            [
                self.context_frames - 0.5 + torch.arange(a, dtype=torch.float32),
                torch.full((a,), (self.grid[0] - 1) / 2),
                torch.full((a,), (self.grid[1] - 1) / 2),
            ],
            dim=-1,
        )  # (Na, 3)
        return torch.cat([frames, actions], dim=0)


@dataclass
class Tokens:
    """A batch of token sequences in model space.

    Attributes:
        frames: (B, Nf, P) frame patches, P = patch·patch·C.
        actions: (B, Na, A) action tokens, or None for samples without actions.
    """

    frames: Tensor
    actions: Tensor | None = None

    def split(self, per_token: Tensor) -> tuple[Tensor, Tensor | None]:
        """Split a per-token tensor (B, N, ...) into frame part (B, Nf, ...) and action part (B, Na, ...)."""
        nf = self.frames.shape[1]
        return per_token[:, :nf], (per_token[:, nf:] if self.actions is not None else None)

    def where(self, mask: Tensor, other: Tokens) -> Tokens:
        """Per-token select: ``self`` where ``mask`` (B, N) is True, else ``other``."""
        mf, ma = self.split(mask)
        frames = torch.where(mf[..., None], self.frames, other.frames)
        actions = None if self.actions is None else torch.where(ma[..., None], self.actions, other.actions)
        return Tokens(frames, actions)


def generated_mask(verb: str, layout: TokenLayout) -> Tensor:
    """Which tokens a verb generates.

    Args:
        verb: one of :data:`VERBS`.
        layout: the sample's layout; ``video`` needs ``has_actions=False``, the others need actions.

    Returns:
        bool tensor (N,), True for generated tokens, False for clean (given) ones.
    """
    if verb not in VERBS:
        raise ValueError(f"verb must be one of {VERBS}, got {verb!r}")
    if (verb == "video") == layout.has_actions:
        need = "no action tokens" if verb == "video" else "action tokens"
        raise ValueError(f"verb {verb!r} needs a layout with {need} (has_actions={layout.has_actions})")
    if not layout.future_frame_tokens and verb != "policy":
        raise ValueError(f"an action-only layout (no future-frame tokens) runs the policy verb only, not {verb!r}")
    kinds = layout.token_kinds()
    if verb in ("policy",):
        return kinds >= 1
    if verb in ("dynamics", "video"):
        return kinds == 1
    return kinds == 2  # inverse


def batch_generated_mask(verbs: list[str], layout: TokenLayout) -> Tensor:
    """Stack :func:`generated_mask` over a batch of verbs: bool (B, N)."""
    cache = {v: generated_mask(v, layout) for v in set(verbs)}
    return torch.stack([cache[v] for v in verbs])


class VerbSampler:
    """Draws one verb per training example with fixed probabilities.

    Samples without actions (pretraining video) always get ``video``; the probabilities choose among
    ``policy``, ``dynamics`` and ``inverse`` for samples with actions.

    Args:
        probs: mapping verb -> weight (non-negative, normalised here), e.g. ``{"policy": 0.4, "dynamics": 0.4,
            "inverse": 0.2}``.
    """

    def __init__(self, probs: Mapping[str, float]) -> None:
        for verb, p in probs.items():
            if verb not in ACTION_VERBS:
                raise ValueError(f"verb_probs keys must be in {ACTION_VERBS}, got {verb!r}")
            if p < 0:
                raise ValueError(f"verb_probs[{verb!r}] must be >= 0, got {p}")
        total = float(sum(probs.values()))
        if total <= 0:
            raise ValueError("verb_probs must have a positive sum")
        self.verbs = [v for v in ACTION_VERBS if probs.get(v, 0) > 0]
        self.probs = torch.tensor([probs[v] / total for v in self.verbs], dtype=torch.float64)

    def sample(
        self, batch_size: int, has_actions: bool, generator: torch.Generator | None = None
    ) -> list[str]:
        """Draw B verbs (all ``video`` when ``has_actions`` is False)."""
        if not has_actions:
            return ["video"] * batch_size
        idx = torch.multinomial(self.probs, batch_size, replacement=True, generator=generator)
        return [self.verbs[i] for i in idx.tolist()]


def demonstration_verbs(verbs: list[str], imitated: Sequence[bool] | Tensor | None) -> list[str]:
    """The verbs of a batch whose clips may come from non-demonstration data (``data.imitate``): a ``policy`` draw
    of a clip that is not imitated becomes ``dynamics`` (its actions teach what actions do, not what to do); the
    other verbs, and every verb when ``imitated`` is None, stay. No random numbers are drawn."""
    if imitated is None:
        return list(verbs)
    flags = [bool(f) for f in imitated]
    if len(flags) != len(verbs):
        raise ValueError(f"{len(verbs)} verbs but {len(flags)} imitate flags")
    return ["dynamics" if v == "policy" and not ok else v for v, ok in zip(verbs, flags, strict=True)]


def patchify(frames: Tensor, patch: int) -> Tensor:
    """Cut frames into non-overlapping patches.

    Args:
        frames: (B, T, C, H, W) with H and W divisible by ``patch``.
        patch: patch side p.

    Returns:
        (B, T·h·w, p·p·C) tokens, frame-major then row then column.
    """
    b, t, c, h, w = frames.shape
    if h % patch or w % patch:
        raise ValueError(f"frame size {h}x{w} must be divisible by patch {patch}")
    return rearrange(frames, "b t c (h p) (w q) -> b (t h w) (p q c)", p=patch, q=patch)


def unpatchify(tokens: Tensor, num_frames: int, height: int, width: int, patch: int) -> Tensor:
    """Inverse of :func:`patchify`: (B, T·h·w, p·p·C) -> (B, T, C, H, W)."""
    return rearrange(
        tokens,
        "b (t h w) (p q c) -> b t c (h p) (w q)",
        t=num_frames,
        h=height // patch,
        w=width // patch,
        p=patch,
        q=patch,
    )
