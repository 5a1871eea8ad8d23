"""Ranking quality: Spearman on known rankings (ties, constants), per-decision records and their means."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from worldmodel.planner.ranking import average_ranks, pool, rank_decision, spearman, summarize


def test_spearman_on_known_rankings():
    x = [0.1, 0.5, 0.2, 0.9, 0.4]
    assert spearman(x, x) == pytest.approx(1.0)
    assert spearman(x, [-v for v in x]) == pytest.approx(-1.0)
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)  # ranks only: any increasing map
    # Hand-computed with ties: a = [1, 2, 2, 3] has ranks [1, 2.5, 2.5, 4]; b = [4, 3, 1, 2] ranks [4, 3, 1, 2].
    # Centred: a' = [-1.5, 0, 0, 1.5], b' = [1.5, 0.5, -1.5, -0.5]; a'.b' = -3, |a'|^2 = 4.5, |b'|^2 = 5,
    # rho = -3 / sqrt(22.5) = -0.632456.
    assert average_ranks([1, 2, 2, 3]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert spearman([1, 2, 2, 3], [4, 3, 1, 2]) == pytest.approx(-3 / math.sqrt(22.5))
    assert spearman([1, 2, 2, 3], [4, 3, 1, 2]) == pytest.approx(spearmanr([1, 2, 2, 3], [4, 3, 1, 2]).statistic)
    rng = np.random.default_rng(0)
    for _ in range(20):  # agrees with scipy, ties included
        a, b = rng.integers(0, 4, 9), rng.normal(size=9)
        if np.ptp(a) > 0:
            assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_spearman_is_nan_where_undefined():
    assert math.isnan(spearman([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]))  # a constant vector has no ranking
    assert math.isnan(spearman([0.1, 0.2, 0.3], [2.0, 2.0, 2.0]))
    assert math.isnan(spearman([1.0], [2.0]))
    assert math.isnan(spearman([0.1, float("nan"), 0.3], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="equally long"):
        spearman([1, 2], [1, 2, 3])


def test_rank_decision_top1_and_regret():
    true = [0.2, 0.9, 0.5, 0.9]
    good = rank_decision([0.1, 0.8, 0.4, 0.7], true)  # picks index 1, a true best
    assert good.top1 and good.regret == 0.0 and good.spearman > 0.9
    bad = rank_decision([0.1, 0.2, 0.9, 0.3], true)  # picks index 2
    assert not bad.top1 and bad.regret == pytest.approx(0.4)
    assert rank_decision([0.0] * 4, true, chosen=3).top1  # ties in the true progress count as best
    frames = np.random.default_rng(0).integers(0, 256, (4, 2, 16, 16, 3), dtype=np.uint8)
    same = rank_decision([0.1, 0.8, 0.4, 0.7], true, imagined=frames, true_frames=frames)
    assert same.ssim == pytest.approx(1.0) and math.isnan(same.psnr)  # identical: infinite PSNR is left out
    noisy = np.clip(frames.astype(int) + 8, 0, 255).astype(np.uint8)
    assert 20 < rank_decision([0, 1, 2, 3], true, imagined=noisy, true_frames=frames).psnr < 40


def test_summaries_skip_undefined_values_and_are_json():
    records = [rank_decision([1, 2, 3], [0.1, 0.2, 0.3]), rank_decision([0, 0, 0], [0.1, 0.2, 0.3]),
               rank_decision([3, 2, 1], [0.1, 0.2, 0.3])]
    ep = summarize(records)
    assert ep["decisions"] == 3 and ep["spearman"] == [1.0, None, -1.0]
    assert ep["spearman_mean"] == pytest.approx(0.0)
    assert ep["top1"] == [True, False, False] and ep["top1_mean"] == pytest.approx(1 / 3)
    assert ep["psnr_mean"] is None
    json.dumps(ep, allow_nan=False)
    pooled = pool([ep, summarize([rank_decision([1, 2, 3], [0.1, 0.2, 0.3])]), {}])
    assert pooled["decisions"] == 4 and pooled["n_spearman"] == 3
    assert pooled["spearman_mean"] == pytest.approx(1 / 3) and pooled["top1_mean"] == pytest.approx(0.5)
    assert pool([{}, {}]) == {}
