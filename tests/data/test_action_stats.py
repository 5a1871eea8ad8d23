"""Action statistics: quantiles, exact normalise/unnormalise inverses, serialisation, caching."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldmodel.data import (
    ActionStats,
    compute_action_stats,
    episode_actions,
    load_or_compute_stats,
    open_rlds,
)


def _stats(q01, q99) -> ActionStats:
    z = [0.0] * 7
    return ActionStats(q01=q01, q99=q99, mean=z, std=z, min=q01, max=q99, count=1)


STATS = _stats([-0.1, -0.2, -0.05, -0.3, -0.3, -0.4, -1.0], [0.1, 0.25, 0.05, 0.3, 0.2, 0.4, 1.0])


def test_quantiles_match_numpy_on_all_steps(tiny_dataset, tiny_stats):
    acts = np.concatenate([episode_actions(e["steps"]["action"])
                           for e in open_rlds(tiny_dataset).episodes(decode_images=False)])
    assert tiny_stats.count == len(acts)
    np.testing.assert_allclose(tiny_stats.q01, np.quantile(acts.astype(np.float64), 0.01, axis=0), rtol=1e-6)
    np.testing.assert_allclose(tiny_stats.q99, np.quantile(acts.astype(np.float64), 0.99, axis=0), rtol=1e-6)
    np.testing.assert_allclose(tiny_stats.mean, acts.mean(0), atol=1e-6)
    np.testing.assert_allclose(tiny_stats.std, acts.std(0), atol=1e-6)


def test_reservoir_quantiles_are_close(tiny_dataset, tiny_stats):
    sampled = compute_action_stats(open_rlds(tiny_dataset), max_samples=40, seed=1)
    assert sampled.count == tiny_stats.count  # moments still use every step
    np.testing.assert_allclose(sampled.mean, tiny_stats.mean, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_normalize_unnormalize_are_inverses_inside_bounds(backend):
    rng = np.random.default_rng(0)
    lo, hi = np.array(STATS.q01), np.array(STATS.q99)
    a = (lo + rng.uniform(size=(5, 3, 7)) * (hi - lo)).astype(np.float32)
    a[..., 6] = rng.choice([-1.0, 0.0, 1.0], size=(5, 3))
    x = a if backend == "numpy" else torch.from_numpy(a)
    n = STATS.normalize(x)
    assert type(n) is type(x) and n.shape == x.shape and n.dtype == x.dtype
    n_np = np.asarray(n)
    assert n_np[..., :6].min() >= -1 and n_np[..., :6].max() <= 1
    np.testing.assert_array_equal(n_np[..., 6], a[..., 6])  # gripper raw
    np.testing.assert_allclose(np.asarray(STATS.unnormalize(n)), a, atol=1e-6)
    np.testing.assert_allclose(np.asarray(STATS.normalize(STATS.unnormalize(n))), n_np, atol=1e-6)


def test_bounds_map_to_minus_one_and_one_and_outside_is_clipped():
    lo, hi = np.array(STATS.q01, np.float64), np.array(STATS.q99, np.float64)
    np.testing.assert_allclose(STATS.normalize(lo)[:6], -1)
    np.testing.assert_allclose(STATS.normalize(hi)[:6], 1)
    np.testing.assert_allclose(STATS.normalize((lo + hi) / 2)[:6], 0, atol=1e-12)
    np.testing.assert_allclose(STATS.normalize(hi + 5)[:6], 1)


def test_degenerate_dimension_is_widened():
    s = _stats([0.0] * 6 + [-1.0], [0.0] * 6 + [1.0])
    a = np.array([0.0, 1e-4, -1e-4, 0, 0, 0, 1.0])
    n = s.normalize(a)
    assert np.isfinite(n).all() and n[0] == 0
    np.testing.assert_allclose(s.unnormalize(n), a, atol=1e-12)


def test_dict_round_trip_and_cache(tiny_dataset, tmp_path):
    ds = open_rlds(tiny_dataset)
    cache = tmp_path / "run" / "action_stats.json"
    first = load_or_compute_stats(ds, cache)
    assert cache.is_file() and ActionStats.from_dict(json.loads(cache.read_text())) == first
    assert ActionStats.from_dict(first.to_dict()) == first
    data = json.loads(cache.read_text())
    data["q99"][0] = 123.0  # a cache for this dataset is trusted as-is...
    cache.write_text(json.dumps(data))
    assert load_or_compute_stats(ds, cache).q99[0] == 123.0
    data["source"]["num_episodes"] = 1  # ...a cache from another dataset is recomputed
    cache.write_text(json.dumps(data))
    assert load_or_compute_stats(ds, cache) == first
    with pytest.raises(ValueError, match="unknown keys"):
        ActionStats.from_dict({**first.to_dict(), "bogus": 1})
