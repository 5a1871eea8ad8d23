"""The clip IterableDataset: contents, sharding over ranks × workers, shuffling, determinism, resumption."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from worldmodel.data import ClipConfig, ClipDataset, ClipLoader, episode_actions, open_rlds
from worldmodel.data.clips import decode_frame, shard_range

K, F = 1, 2


def test_clip_contents(tiny_dataset, tiny_stats, clip_ids):
    ds = ClipDataset(tiny_dataset, ClipConfig(K, F, image_size=(32, 40), shuffle=False), tiny_stats)
    clips = list(ds)
    assert [tuple(c["clip_id"].tolist()) for c in clips] == sorted(clip_ids())
    episodes = {e["episode_index"]: e for e in open_rlds(tiny_dataset).episodes(decode_images=False)}
    for c in clips:
        ep, s = c["clip_id"].tolist()
        steps = episodes[ep]["steps"]
        length = len(steps["is_first"])
        assert c["frames"].shape == (K + F, 3, 32, 40) and c["frames"].dtype == torch.float32
        assert c["frames"].min() >= -1 and c["frames"].max() <= 1
        jpegs = steps["observation"]["image"][s:s + K + F]
        want = np.stack([decode_frame(jpeg, (32, 40)) for jpeg in jpegs])
        torch.testing.assert_close(c["frames"], torch.from_numpy(want).permute(0, 3, 1, 2) / 127.5 - 1)
        raw = episode_actions(steps["action"])[s + K - 1:s + K - 1 + F]  # action i moves frame K-1+i to K+i
        torch.testing.assert_close(c["actions"], torch.from_numpy(tiny_stats.normalize(raw)))
        progress = torch.arange(s + K, s + K + F, dtype=torch.float32) / (length - 1)
        torch.testing.assert_close(c["progress"], progress)
        language = steps["observation"]["natural_language_embedding"][0]
        torch.testing.assert_close(c["language"], torch.from_numpy(language))


def test_video_only_and_stride(tiny_dataset, clip_ids):
    ds = ClipDataset(tiny_dataset, ClipConfig(K, F, stride=2, image_size=(32, 40), video_only=True))
    clips = list(ds)
    assert "actions" not in clips[0]
    assert {tuple(c["clip_id"].tolist()) for c in clips} == clip_ids(stride=2)
    with pytest.raises(ValueError, match="action stats"):
        ClipDataset(tiny_dataset, ClipConfig(K, F))


def test_two_ranks_two_workers_cover_every_clip_once(tiny_dataset, tiny_stats, clip_ids):
    seen: Counter = Counter()
    for rank in range(2):
        cfg = ClipConfig(K, F, image_size=(16, 20), shuffle_buffer=4, block_episodes=1)
        ds = ClipDataset(tiny_dataset, cfg, tiny_stats, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
        for batch in loader:
            seen.update(map(tuple, batch["clip_id"].tolist()))
    assert set(seen) == clip_ids() and set(seen.values()) == {1}


def test_deterministic_for_a_seed_and_shuffled(tiny_dataset, tiny_stats, clip_ids):
    def order(seed: int, epoch: int = 0) -> list[tuple[int, int]]:
        cfg = ClipConfig(K, F, image_size=(16, 20), shuffle_buffer=6, block_episodes=2, seed=seed)
        ds = ClipDataset(tiny_dataset, cfg, tiny_stats)
        ds.set_epoch(epoch)
        return [tuple(c["clip_id"].tolist()) for c in ds]

    first = order(0)
    assert first == order(0) and sorted(first) == sorted(clip_ids())
    assert first != sorted(first)
    assert order(1) != first and order(0, epoch=1) != first


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_the_stream_exactly(tiny_dataset, tiny_stats, num_workers):
    cfg = ClipConfig(K, F, image_size=(16, 20), shuffle_buffer=4, block_episodes=2, epochs=None)
    shards = max(num_workers, 1)

    def loader() -> ClipLoader:
        return ClipLoader(ClipDataset(tiny_dataset, cfg, tiny_stats), batch_size=2, num_workers=num_workers)

    def per_shard(batches) -> list[list[tuple[int, int]]]:
        """Clip ids in the order each worker produced them (a worker's episodes are a contiguous range)."""
        out: list[list[tuple[int, int]]] = [[] for _ in range(shards)]
        for batch in batches:
            for ep, start in batch["clip_id"].tolist():
                shard = next(w for w in range(shards) if ep < shard_range(8, w, shards)[1])
                out[shard].append((ep, start))
        return out

    it = iter(loader())
    reference = [next(it) for _ in range(30)]  # endless: crosses epoch boundaries
    first = loader()
    it = iter(first)
    head = [next(it) for _ in range(7)]
    state = first.state_dict()
    second = loader()
    second.load_state_dict(state)
    it = iter(second)
    tail = [next(it) for _ in range(23)]
    # Every worker continues exactly where it stopped: no clip repeated or skipped. (With workers, the
    # DataLoader restarts its round robin at worker 0, so batches may interleave differently.)
    for ref, a, b in zip(per_shard(reference), per_shard(head), per_shard(tail), strict=True):
        resumed = a + b
        n = min(len(ref), len(resumed))
        assert n >= 40 // shards and resumed[:n] == ref[:n]
    if num_workers == 0:
        assert [b["clip_id"].tolist() for b in head + tail] == [b["clip_id"].tolist() for b in reference]
    bad = ClipLoader(ClipDataset(tiny_dataset, cfg, tiny_stats, rank=0, world_size=2), batch_size=2,
                     num_workers=num_workers)
    with pytest.raises(ValueError, match="shards"):
        bad.load_state_dict(state)


def test_spawned_workers(tiny_dataset, tiny_stats, clip_ids):
    """The dataset pickles for "spawn" DataLoader workers, also after it was iterated in the main process."""
    ds = ClipDataset(tiny_dataset, ClipConfig(K, F, image_size=(16, 20), shuffle=False), tiny_stats)
    next(iter(ds))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    assert {tuple(i) for b in loader for i in b["clip_id"].tolist()} == clip_ids()


def test_balanced_clips_instruction_and_state(tiny_dataset, tiny_stats):
    """clips_per_episode draws the same number of starts from every episode, whatever its length; the clips carry
    the instruction's token states and the normalised state of their context frames."""
    from worldmodel.data.reader import episode_states
    from worldmodel.language import instruction_tokens

    cfg = ClipConfig(2, F, image_size=(32, 40), clips_per_episode=5, instruction_tokens=16, state=True)
    clips = list(ClipDataset(tiny_dataset, cfg, tiny_stats))
    per_episode = Counter(int(c["clip_id"][0]) for c in clips)
    episodes = {e["episode_index"]: e for e in open_rlds(tiny_dataset).episodes(decode_images=False)}
    long_enough = {i for i, e in episodes.items() if len(e["steps"]["is_first"]) >= 2 + F}
    assert set(per_episode.values()) == {5} and set(per_episode) == long_enough
    for c in clips:
        ep, s = c["clip_id"].tolist()
        obs = episodes[ep]["steps"]["observation"]
        text = obs["natural_language_instruction"][0].decode()
        torch.testing.assert_close(c["instruction"], torch.from_numpy(instruction_tokens(text, 16)))
        want = tiny_stats.normalize_state(episode_states(obs)[s:s + 2])
        assert c["state"].shape == (2, 8)
        torch.testing.assert_close(c["state"], torch.from_numpy(want))
    again = [tuple(c["clip_id"].tolist()) for c in ClipDataset(tiny_dataset, cfg, tiny_stats)]
    assert again == [tuple(c["clip_id"].tolist()) for c in clips]  # seeded


def test_random_shift_moves_every_frame_of_a_clip_alike_and_resumes(tiny_dataset, tiny_stats):
    from worldmodel.data.clips import random_shift

    frames = np.arange(2 * 6 * 7 * 1).reshape(2, 6, 7, 1)
    shifted = [random_shift(frames, 2, np.random.default_rng(s)) for s in range(40)]
    offsets = set()
    for out in shifted:
        assert out.shape == frames.shape
        # the same (dy, dx) for both frames: the interior of frame 1 minus frame 0 is one constant
        assert np.unique(out[1] - out[0]).size == 1
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out[0, 2:-2, 2:-2], frames[0, 2 - dy:4 - dy, 2 - dx:5 - dx])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 10  # many of the 25 shifts occur

    def stream(shift: int, head: int = 0) -> list[torch.Tensor]:
        cfg = ClipConfig(K, F, image_size=(16, 20), shuffle_buffer=4, block_episodes=2, random_shift=shift)
        ds = ClipDataset(tiny_dataset, cfg, tiny_stats)
        if head:
            ds.set_resume({0: (0, head)})
        return [c["frames"] for c in ds]

    plain, a, b = stream(0), stream(2), stream(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # reproducible
    assert sum(not torch.equal(x, y) for x, y in zip(plain, a, strict=True)) > len(plain) // 2
    assert all(torch.equal(x, y) for x, y in zip(a[5:], stream(2, head=5), strict=True))  # resumes the same
    with pytest.raises(ValueError, match="random_shift"):
        ClipConfig(K, F, random_shift=-1)


def test_forked_workers_with_instruction_tokens_after_wandb_init(tiny_dataset, tmp_path):
    """With wandb running (offline), a forked worker that imported transformers itself died with wandb's
    ForkedError; the loader now loads the instruction encoder before the workers fork."""
    import subprocess
    import sys

    script = f"""
import wandb
from worldmodel.data import ClipConfig, ClipDataset, ClipLoader, compute_action_stats, open_rlds
run = wandb.init(mode="offline", dir={str(tmp_path)!r}, project="t")
cfg = ClipConfig({K}, {F}, image_size=(16, 20), instruction_tokens=16)
ds = ClipDataset({str(tiny_dataset)!r}, cfg, compute_action_stats(open_rlds({str(tiny_dataset)!r})))
batch = next(iter(ClipLoader(ds, batch_size=2, num_workers=1)))
print("instruction", tuple(batch["instruction"].shape))
run.finish()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "instruction (2, 16, 384)" in done.stdout
