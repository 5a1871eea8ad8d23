"""Image similarity of uint8 frames (imagined vs true): PSNR and SSIM.

A leaf module, so that both the planner's ranking diagnostics and the offline evaluation use the same metrics
without the planner importing the evaluation layer (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import numpy as np


def psnr(real: np.ndarray, fake: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((real.astype(np.float64) - fake.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(real: np.ndarray, fake: np.ndarray) -> float:
    """Structural similarity (scikit-image's default 7x7 uniform window, colour channels averaged) of two uint8
    (H, W, 3) images; 1 when equal."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(real, fake, channel_axis=-1, data_range=255))
