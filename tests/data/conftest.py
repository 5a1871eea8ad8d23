"""Shared fixtures: tiny synthetic RLDS datasets written once per session with the real writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import write_dataset

# Lengths chosen so clip counts differ per episode (and one episode is too short for K+F = 3).
LENGTHS = (6, 9, 2, 7, 11, 5, 8, 10)


@pytest.fixture(scope="session")
def clip_ids():
    """All (episode, start) clip ids of ``tiny_dataset`` for K + F = 3 and a given stride."""

    def ids(k_plus_f: int = 3, stride: int = 1) -> set[tuple[int, int]]:
        return {(e, s) for e, n in enumerate(LENGTHS) for s in range(0, n - k_plus_f + 1, stride)}

    return ids


@pytest.fixture(scope="session")
def episodes():
    """The synthetic episodes written to ``tiny_dataset`` (T = LENGTHS[i])."""
    return [synthetic_episode(i, n) for i, n in enumerate(LENGTHS)]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, episodes) -> Path:
    """``<root>/tiny_sim/0.1.0`` with 8 episodes in 3 shards."""
    root = tmp_path_factory.mktemp("rlds")
    return write_dataset(iter(episodes), root, "tiny_sim", num_shards=3, progress=False)


@pytest.fixture(scope="session")
def tiny_stats(tiny_dataset):
    from worldmodel.data import compute_action_stats, open_rlds

    return compute_action_stats(open_rlds(tiny_dataset))
