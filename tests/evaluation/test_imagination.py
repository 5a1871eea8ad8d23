"""Held-out measures: clips in episode order, seeded validation flow loss, PSNR / SSIM of imagined futures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.data import compute_action_stats, open_rlds
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import write_dataset
from worldmodel.evaluation.imagination import (
    heldout_clips,
    imagination_quality,
    psnr,
    ssim,
    validation_flow_loss,
)
from worldmodel.objectives import ObjectiveConfig
from worldmodel.world_model import WorldModel

LENGTHS = (12, 9, 4, 15)


@pytest.fixture(autouse=True)
def _single_thread(one_thread: None) -> None:
    """One torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("heldout")
    path = write_dataset((synthetic_episode(50 + i, n, image_hw=(32, 40)) for i, n in enumerate(LENGTHS)),
                         root, "heldout_sim", num_shards=2, progress=False)
    return path, compute_action_stats(open_rlds(path))


def test_heldout_clips_are_in_episode_order_with_stride_and_cap(heldout):
    path, stats = heldout
    clips = heldout_clips(path, stats, 1, 2, (32, 40), stride=4)
    expected = sum(len(range(0, n - 3 + 1, 4)) for n in LENGTHS)  # clips of K + F = 3 every 4 steps
    assert clips["frames"].shape == (expected, 3, 3, 32, 40)
    assert clips["actions"].shape == (expected, 2, 7) and clips["language"].shape == (expected, 512)
    assert clips["frames"].min() >= -1 and clips["frames"].max() <= 1
    again = heldout_clips(path, stats, 1, 2, (32, 40), stride=4, max_clips=3)
    assert torch.equal(again["frames"], clips["frames"][:3])  # same order every time: a fixed held-out set
    with pytest.raises(ValueError, match="long enough"):
        heldout_clips(path, stats, 1, 20, (32, 40))


def test_psnr_and_ssim_known_values():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert psnr(img, img) == float("inf") and ssim(img, img) == pytest.approx(1.0)
    shifted = np.clip(img.astype(int) + 5, 0, 255).astype(np.uint8)
    mse = np.mean((img.astype(float) - shifted) ** 2)
    assert psnr(img, shifted) == pytest.approx(10 * np.log10(255**2 / mse))
    noisy = [np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8) for s in (5, 30)]
    assert psnr(img, noisy[0]) > psnr(img, noisy[1])
    assert 1 > ssim(img, noisy[0]) > ssim(img, noisy[1])


def test_validation_flow_loss_is_seeded_vanilla_and_per_verb(heldout):
    path, stats = heldout
    wm = WorldModel.random("tiny", seed=0)
    clips = heldout_clips(path, stats, 1, 2, (32, 40), stride=2)
    a = validation_flow_loss(wm.model, clips, "policy", seed=3, batch_size=4)
    assert a == validation_flow_loss(wm.model, clips, "policy", seed=3, batch_size=4)
    assert a != validation_flow_loss(wm.model, clips, "policy", seed=4, batch_size=4)
    # a Self-Flow objective is scored without its representation term: the same number
    selfflow = dataclasses.replace(ObjectiveConfig(), selfflow=True)
    assert a == validation_flow_loss(wm.model, clips, "policy", seed=3, batch_size=4, objective=selfflow)
    dyn = validation_flow_loss(wm.model, clips, "dynamics", seed=3, batch_size=4)
    assert dyn["flow_actions"] == 0 and a["flow_actions"] > 0  # dynamics is given the actions
    assert a["flow"] == pytest.approx(a["flow_frames"] + a["flow_actions"], rel=1e-5)
    other = WorldModel.random("tiny", seed=1)
    assert validation_flow_loss(other.model, clips, "policy", seed=3, batch_size=4) != a


class _Oracle:
    """A stand-in world model whose dynamics returns the real future, plus noise that grows with the step."""

    context_frames, device = 1, torch.device("cpu")

    def __init__(self, clips: dict[str, torch.Tensor], noise: float) -> None:
        self.real, self.noise, self.calls = clips["frames"][:, 1:], noise, 0

    def rollout_model(self, context, lang, horizon, steps, generator, actions):
        b = context.shape[0]
        real = self.real[self.calls:self.calls + b]
        self.calls += b
        scale = self.noise * torch.arange(horizon, dtype=torch.float32).view(1, -1, 1, 1, 1)
        return actions, real + scale * torch.randn(real.shape, generator=generator)


def test_imagination_quality_scores_each_future_step(heldout):
    path, stats = heldout
    clips = heldout_clips(path, stats, 1, 4, (32, 40), stride=3)
    exact = imagination_quality(_Oracle(clips, 0.0), clips, batch_size=2)
    assert exact["ssim"] == pytest.approx(1.0) and exact["ssim_per_step"] == pytest.approx([1.0] * 4)
    noisy = imagination_quality(_Oracle(clips, 0.2), clips, batch_size=2)
    assert noisy["psnr_per_step"][0] == float("inf")  # step 1 gets no noise here
    assert noisy["psnr_per_step"][1] > noisy["psnr_per_step"][2] > noisy["psnr_per_step"][3]
    assert noisy["n_clips"] == clips["frames"].shape[0]
    real, fake = noisy["examples"]
    assert real.shape == fake.shape == (4, 32, 40, 3) and real.dtype == np.uint8


def test_imagination_quality_of_a_real_model_is_seeded(heldout):
    path, stats = heldout
    wm = WorldModel.random("tiny", seed=0, stats=stats)
    clips = heldout_clips(path, stats, 1, 3, (32, 40), stride=4, max_clips=5)  # 3 steps: two chunks of F = 2
    a = imagination_quality(wm, clips, steps=2, seed=1)
    b = imagination_quality(wm, clips, steps=2, seed=1)
    assert a["psnr_per_step"] == b["psnr_per_step"] and len(a["psnr_per_step"]) == 3
    assert np.isfinite(a["psnr"]) and -1 <= a["ssim"] < 1
