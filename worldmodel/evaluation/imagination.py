"""Offline measures of a world model on held-out episodes: validation flow loss and imagination quality.

* :func:`heldout_clips` reads fixed clips (episode order, no shuffling) from an RLDS directory;
* :func:`validation_flow_loss` is the vanilla flow-matching loss of one verb on them, with the times and noise
  drawn from a fixed seed, so that checkpoints of different runs (Self-Flow or not) are scored on the very same
  noisy inputs;
* :func:`imagination_quality` rolls the ``dynamics`` verb open-loop from each clip's first K frames under the
  clip's real actions and compares the imagined frames with the real ones (PSNR, SSIM per future step).

``scripts/compare_objectives.py`` uses all three; they work on any checkpoint and dataset of the RT-1 schema.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worldmodel.data.clips import ClipConfig, ClipDataset
from worldmodel.data.stats import ActionStats
from worldmodel.image_metrics import psnr, ssim  # noqa: F401  (re-exported)
from worldmodel.io import model_to_pixels as to_uint8
from worldmodel.objectives import ObjectiveConfig
from worldmodel.objectives.losses import FlowBatch, flow_matching_loss


def heldout_clips(data_dir: str | Path, stats: ActionStats, context_frames: int, future_frames: int,
                  image_size: tuple[int, int], stride: int = 8, max_clips: int = 128,
                  name: str | None = None, version: str | None = None) -> dict[str, torch.Tensor]:
    """Clips of a held-out dataset in episode order, every ``stride`` steps, as one batch.

    Args:
        data_dir: the RLDS directory (``<dir>/<name>/<version>`` or that version directory).
        stats: the trained model's action statistics (the clips' actions are normalised with them).
        context_frames, future_frames: K and F of each clip.
        image_size: (H, W) of the model.
        stride: steps between clip starts within an episode.
        max_clips: stop after this many.

    Returns:
        ``frames`` (N, K+F, 3, H, W) in [-1, 1], ``actions`` (N, F, 7) normalised, ``language`` (N, 512).

    Raises:
        ValueError: no episode of the dataset is long enough for one clip.
    """
    cfg = ClipConfig(context_frames=context_frames, future_frames=future_frames, stride=stride,
                     image_size=tuple(image_size), shuffle=False, epochs=1)
    clips = ClipDataset(data_dir, cfg, stats, rank=0, world_size=1, name=name, version=version,
                        verify_shards=True)
    out: dict[str, list[torch.Tensor]] = {"frames": [], "actions": [], "language": []}
    for clip in clips:
        for key, values in out.items():
            values.append(clip[key])
        if len(out["frames"]) >= max_clips:
            break
    if not out["frames"]:
        raise ValueError(f"{data_dir}: no episode is long enough for one clip of {cfg.clip_length} frames")
    return {key: torch.stack(values) for key, values in out.items()}


def _batches(clips: dict[str, torch.Tensor], batch_size: int) -> Any:
    n = clips["frames"].shape[0]
    for start in range(0, n, batch_size):
        yield {key: value[start:start + batch_size] for key, value in clips.items()}


@torch.no_grad()
def validation_flow_loss(model: nn.Module, clips: dict[str, torch.Tensor], verb: str, seed: int = 0,
                         batch_size: int = 32, objective: ObjectiveConfig | None = None) -> dict[str, float]:
    """Vanilla flow-matching loss of ``verb`` on the clips (no Self-Flow term, whatever the model was trained
    with), averaged over clips; times and noise come from ``seed``, so equal seeds give equal inputs.

    Args:
        model: a ``VideoActionDiT`` (eval mode).
        clips: from :func:`heldout_clips`, whose F must be the model's ``future_frames``.
        verb: ``policy``, ``dynamics``, ``inverse`` or ``video``.
        seed: seeds the times and the noise.
        batch_size: clips per forward pass.
        objective: time sampler and action weight (default: the training default).

    Returns:
        ``flow``, ``flow_frames`` and ``flow_actions``, each the clip-weighted mean.
    """
    cfg = dataclasses.replace(objective or ObjectiveConfig(), selfflow=False)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    sums = {"flow": 0.0, "flow_frames": 0.0, "flow_actions": 0.0}
    n = 0
    for batch in _batches(clips, batch_size):
        b = batch["frames"].shape[0]
        actions = None if verb == "video" else batch["actions"].to(device)
        flow_batch = FlowBatch.from_clip(batch["frames"].to(device), actions, batch["language"].to(device),
                                         [verb] * b, model.cfg.context_frames, model.cfg.patch)
        out = flow_matching_loss(model, flow_batch, cfg, gen)
        for key in sums:
            sums[key] += float(getattr(out, key)) * b
        n += b
    return {key: value / n for key, value in sums.items()}


def imagination_quality(world_model: Any, clips: dict[str, torch.Tensor], steps: int = 4, seed: int = 0,
                        batch_size: int = 32) -> dict[str, Any]:
    """Open-loop ``dynamics`` rollouts from each clip's first K frames under its real actions, scored against
    the real future frames at the model's resolution.

    Args:
        world_model: a :class:`worldmodel.WorldModel`.
        clips: from :func:`heldout_clips` with K = the model's context frames and any horizon F (longer than the
            model's chunk rolls out chunk by chunk).
        steps: sampler steps per chunk.
        seed: seeds the sampling noise.
        batch_size: clips per rollout.

    Returns:
        ``psnr`` and ``ssim`` (means over clips and future steps), ``psnr_per_step`` and ``ssim_per_step``
        (lists of length F), ``n_clips``, and ``examples``: (real, imagined) uint8 (F, H, W, 3) of the first clip.
    """
    k = world_model.context_frames
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device = world_model.device
    horizon = clips["frames"].shape[1] - k
    scores: dict[str, list[list[float]]] = {"psnr": [[] for _ in range(horizon)], "ssim": [[] for _ in range(horizon)]}
    examples = None
    for batch in _batches(clips, batch_size):
        frames = batch["frames"].to(device)
        _, imagined = world_model.rollout_model(frames[:, :k], batch["language"].to(device), horizon, steps, gen,
                                                actions=batch["actions"].to(device))
        real_u8, fake_u8 = to_uint8(frames[:, k:]), to_uint8(imagined)
        if examples is None:
            examples = (real_u8[0], fake_u8[0])
        for i in range(real_u8.shape[0]):
            for t in range(horizon):
                scores["psnr"][t].append(psnr(real_u8[i, t], fake_u8[i, t]))
                scores["ssim"][t].append(ssim(real_u8[i, t], fake_u8[i, t]))
    per_step = {key: [float(np.mean(v)) for v in values] for key, values in scores.items()}
    return {"psnr": float(np.mean(per_step["psnr"])), "ssim": float(np.mean(per_step["ssim"])),
            "psnr_per_step": per_step["psnr"], "ssim_per_step": per_step["ssim"],
            "n_clips": int(clips["frames"].shape[0]), "examples": examples}
