"""Sample videos during training: real future | generated future for one fixed validation clip."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worldmodel.data.clips import ClipConfig, ClipDataset
from worldmodel.data.config import data_config
from worldmodel.data.pipeline import clip_config, dataset_path
from worldmodel.data.stats import ActionStats
from worldmodel.io import model_to_pixels
from worldmodel.models.conditioning import Condition
from worldmodel.objectives import GenerationContext, generate

SAMPLES = "samples"


def validation_clip(data_cfg: Any, stats: ActionStats | None,
                    clip_cfg: ClipConfig | None = None) -> dict[str, torch.Tensor]:
    """The first clip of the dataset in episode order (no shuffling): the same clip on every run and resume.

    Args:
        data_cfg: the ``data`` group.
        stats: action (and state) statistics.
        clip_cfg: the trainer's clip settings (with the model's instruction / state fields); default from
            ``data_cfg``.

    Returns:
        ``frames`` (K+F, 3, H, W), ``language`` (512,), ``actions`` (F, 7) unless video-only, and ``instruction`` /
        ``state`` when the clips carry them.
    """
    cfg = dataclasses.replace(clip_cfg or clip_config(data_cfg), shuffle=False, epochs=1, clips_per_episode=0,
                              weights=None)
    clips = ClipDataset(dataset_path(data_cfg), cfg, stats, rank=0, world_size=1, name=data_cfg.get("name"),
                        version=data_cfg.get("version"), strict=data_config(data_cfg).strict,
                        verify_shards=False)
    for clip in clips:
        return {k: v for k, v in clip.items() if k in ("frames", "language", "actions", "instruction", "state")}
    raise ValueError(f"data.dir={data_cfg.get('dir')}: no episode is long enough for one clip of "
                     f"{cfg.clip_length} frames")


to_uint8 = model_to_pixels  # the name training code used; the conversion lives in worldmodel.io


@torch.no_grad()
def generate_sample(model: nn.Module, clip: dict[str, torch.Tensor], verb: str, steps: int, seed: int,
                    device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Generate the clip's future with ``verb`` (``video`` or ``dynamics``, which uses the real actions).

    Returns:
        real, generated: (K+F, H, W, 3) uint8 each; the generated clip repeats the real context frames.
    """
    k = model.cfg.context_frames
    frames = clip["frames"][None].to(device)  # (1, K+F, 3, H, W)
    f = frames.shape[1] - k
    actions = clip["actions"][None].to(device) if verb == "dynamics" else None
    cond = Condition(*(clip[key][None] if key in clip else None for key in ("language", "instruction", "state")))
    context = GenerationContext(frames[:, :k], f, actions=actions, lang=cond.to(device))
    gen = torch.Generator(device=device).manual_seed(seed)
    out = generate(model, verb, context, steps=steps, generator=gen)
    generated = torch.cat([frames[0, :k], out.frames[0].to(frames.dtype)])  # (K+F, 3, H, W)
    return to_uint8(frames[0]), to_uint8(generated)


def write_sample(real: np.ndarray, generated: np.ndarray, run_dir: Path, step: int) -> tuple[Path, Path | None]:
    """Write ``samples/step_N.png`` (top row real, bottom row generated) and ``step_N.mp4`` (side by side).

    Returns:
        (png path, mp4 path or None when ffmpeg is unavailable).
    """
    import imageio.v2 as imageio

    out = run_dir / SAMPLES
    out.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = real.shape
    sep = 2
    grid = np.full((2 * h + sep, t * (w + sep) - sep, 3), 255, np.uint8)
    for i in range(t):
        x0 = i * (w + sep)
        grid[:h, x0:x0 + w] = real[i]
        grid[h + sep:, x0:x0 + w] = generated[i]
    png = out / f"step_{step:08d}.png"
    imageio.imwrite(png, grid)
    scale = max(1, 128 // h)  # small frames are upscaled (nearest) so the video is watchable
    pair = np.concatenate([real, np.full((t, h, sep, 3), 255, np.uint8), generated], axis=2)
    pair = pair.repeat(scale, axis=1).repeat(scale, axis=2)
    pair = pair[:, : pair.shape[1] // 2 * 2, : pair.shape[2] // 2 * 2]  # even sides for yuv420p
    mp4: Path | None = out / f"step_{step:08d}.mp4"
    try:
        imageio.mimwrite(mp4, list(pair), fps=3, macro_block_size=1)  # RT-1 records at 3 Hz
    except (ImportError, OSError, RuntimeError, ValueError):
        mp4 = None
    return png, mp4
