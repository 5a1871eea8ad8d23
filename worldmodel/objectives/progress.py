"""The progress loss: teach :class:`~worldmodel.models.progress.ProgressHead` the clips' ``progress``.

The target of future frame ``i`` of a clip starting at step ``s`` of an episode of length ``L`` is
``(s + K + i) / (L - 1)`` (``worldmodel.data.clips``). The loss is a binary cross-entropy with these soft
targets on the head's logits (better-behaved gradients than an MSE through a sigmoid near 0 and 1); MSE and MAE
of the predicted progress are reported for logging.

By default the features come from the network under ``no_grad`` (``detach_features=True``): the trainer passes
the EMA model, the very weights the planner will score with, so the head learns exactly the features it will
see, and the flow objective alone shapes the trunk.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.models.progress import ProgressHead, clean_frame_states


@dataclass
class ProgressLossOutput:
    """Progress loss terms (scalars); ``total`` is what to backpropagate.

    Attributes:
        total: BCE between predicted progress logits and the targets, over the clip's future frames.
        mse: mean squared error of the predicted progress.
        mae: mean absolute error of the predicted progress.
    """

    total: Tensor
    mse: Tensor
    mae: Tensor


def progress_loss(
    model: nn.Module,
    head: ProgressHead,
    frames: Tensor,
    lang: Tensor | None,
    progress: Tensor,
    detach_features: bool = True,
    weight: Tensor | None = None,
) -> ProgressLossOutput:
    """Progress loss of one batch of clips.

    Args:
        model: the :class:`~worldmodel.models.VideoActionDiT` whose hidden states the head reads (the EMA
            model when ``detach_features``).
        head: the progress head.
        frames: (B, K+F, C, H, W) clean clip frames in [-1, 1].
        lang: (B, lang_dim) language embeddings or None.
        progress: (B, F) targets in [0, 1] for the last F frames.
        detach_features: run the network under ``no_grad`` (only the head trains).
        weight: (B,) per-clip weights (e.g. 0 for clips whose ``step / length`` is no progress: non-demonstration
            data); the loss and errors are means over the weighted clips. None: every clip alike.

    Returns:
        :class:`ProgressLossOutput`.
    """
    f = progress.shape[1]
    if f > frames.shape[1]:
        raise ValueError(f"progress has {f} targets per clip but the clip has only {frames.shape[1]} frames")
    with torch.no_grad() if detach_features else contextlib.nullcontext():
        pooled = clean_frame_states(model, frames, lang, head.block)  # (B, T, D)
    logits = head(pooled.float(), lang)[:, -f:]  # (B, F)
    target = progress.to(logits.dtype)
    if weight is None:
        total = F.binary_cross_entropy_with_logits(logits, target)
        with torch.no_grad():
            err = torch.sigmoid(logits) - target
        return ProgressLossOutput(total=total, mse=(err**2).mean(), mae=err.abs().mean())
    w = weight.to(logits.dtype)[:, None].expand_as(logits)  # every clip of a zero-weight row still runs (DDP)
    norm = w.sum().clamp_min(1e-8)
    total = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / norm
    with torch.no_grad():
        err = torch.sigmoid(logits) - target
    return ProgressLossOutput(total=total, mse=(err**2 * w).sum() / norm, mae=(err.abs() * w).sum() / norm)
