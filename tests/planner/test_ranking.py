"""Ranking quality: Spearman on known rankings (ties, constants), per-decision records and their means, and whether
imagined futures differ as the true ones do (``action_response``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from worldmodel.planner.ranking import action_response, average_ranks, pool, rank_decision, spearman, summarize


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


def _futures_with_a_moving_square(xs: list[int], size: int = 32) -> np.ndarray:
    """(n, 2, size, size, 3) uint8 futures: a white 8 x 8 square on black at column x, one per candidate."""
    out = np.zeros((len(xs), 2, size, size, 3), np.uint8)
    for i, x in enumerate(xs):
        out[i, :, 12:20, x:x + 8] = 255
    return out


def test_action_response_tells_futures_that_follow_the_actions_from_ones_that_do_not():
    true = _futures_with_a_moving_square([0, 8, 16, 24])
    follows = action_response(true, true)
    assert follows.corr == pytest.approx(1.0) and follows.true_spread > 0
    assert follows.imagined_spread == pytest.approx(follows.true_spread)
    # brighter and offset by a constant, the candidates still differ as they should: correlation stays 1
    shifted = np.clip(true.astype(int) // 2 + 40, 0, 255).astype(np.uint8)
    assert action_response(shifted, true).corr == pytest.approx(1.0, abs=1e-6)
    # the futures in reverse order: the differences are there but belong to the wrong candidates; with four
    # disjoint squares, a square's centred image correlates -1/3 with another's, so the reversal gives -1/3
    assert action_response(true[::-1], true).corr == pytest.approx(-1 / 3)
    # every candidate imagined alike (the action ignored): no differences, correlation 0, spread 0
    alike = np.repeat(true[:1], 4, axis=0)
    ignored = action_response(alike, true)
    assert ignored.corr == 0.0 and ignored.imagined_spread == 0.0 and ignored.true_spread > 0
    # nothing to follow when the true futures are alike: undefined, whatever the imagination does
    assert math.isnan(action_response(true, alike).corr)
    # the same with values whose mean does not round exactly (n = 6, odd pixel values): still exactly 0 / NaN
    odd = np.random.default_rng(1).integers(0, 256, (1, 2, 32, 32, 3), dtype=np.uint8).repeat(6, axis=0)
    varied = np.random.default_rng(2).integers(0, 256, (6, 2, 32, 32, 3), dtype=np.uint8)
    assert action_response(odd, varied).corr == 0.0 and action_response(odd, varied).imagined_spread == 0.0
    assert math.isnan(action_response(varied, odd).corr)
    # differences by independent noise only: near zero
    rng = np.random.default_rng(0)
    noise = np.clip(alike.astype(int) + rng.integers(-60, 61, alike.shape), 0, 255).astype(np.uint8)
    assert abs(action_response(noise, true).corr) < 0.2
    with pytest.raises(ValueError, match="one shape"):
        action_response(true[:3], true)
    with pytest.raises(ValueError, match="pool"):
        action_response(true, true, pool=64)


def test_rank_decision_records_the_action_correlation_of_imagined_futures():
    true = _futures_with_a_moving_square([0, 8, 16, 24])
    record = rank_decision([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4], imagined=true[::-1], true_frames=true)
    assert record.action_corr == pytest.approx(action_response(true[::-1], true).corr)
    assert rank_decision([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4]).action_corr is None  # nothing imagined
    assert summarize([record])["action_corr_mean"] == pytest.approx(record.action_corr)
