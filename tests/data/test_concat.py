"""Several datasets read as one (``data.dir=[a, b]``): episode order, ranges across the boundary, clips and
statistics over both, errors naming the part, and a one-element list being the plain path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.data.conftest import LENGTHS
from worldmodel.data import (
    ClipConfig,
    ClipDataset,
    ConcatRLDS,
    DatasetError,
    RLDSDataset,
    episode_actions,
    open_rlds,
)
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import write_dataset

LENGTHS_B = (12, 4, 13)  # lengths no episode of tiny_dataset has


@pytest.fixture(scope="module")
def part_b(tmp_path_factory) -> Path:
    """A second ``tiny_sim`` (another root, as a second `worldmodel data sim out=...`) with 3 other episodes."""
    root = tmp_path_factory.mktemp("rlds_b")
    return write_dataset((synthetic_episode(100 + i, n) for i, n in enumerate(LENGTHS_B)), root, "tiny_sim",
                         num_shards=2, progress=False)


@pytest.fixture(scope="module")
def alone(tiny_dataset, part_b) -> list[dict]:
    """The episodes of tiny_dataset, then those of part_b, each read on its own."""
    return [ep for path in (tiny_dataset, part_b) for ep in open_rlds(path).episodes(decode_images=False)]


def assert_same_episode(read: dict, want: dict) -> None:
    np.testing.assert_array_equal(episode_actions(read["steps"]["action"]), episode_actions(want["steps"]["action"]))
    obs, want_obs = read["steps"]["observation"], want["steps"]["observation"]
    np.testing.assert_array_equal(obs["natural_language_embedding"], want_obs["natural_language_embedding"])
    assert list(obs["image"]) == list(want_obs["image"])  # the same JPEG bytes


def test_episodes_of_each_part_in_order_and_ranges_across_the_boundary(tiny_dataset, part_b, alone):
    both = open_rlds([tiny_dataset, part_b])
    assert isinstance(both, ConcatRLDS) and both.path == [tiny_dataset, part_b]
    assert both.num_episodes == len(LENGTHS) + len(LENGTHS_B) == len(alone)
    read = list(both.episodes(decode_images=False))
    assert [e["episode_index"] for e in read] == list(range(len(alone)))
    assert [len(e["steps"]["is_first"]) for e in read] == [*LENGTHS, *LENGTHS_B]
    for r, want in zip(read, alone, strict=True):
        assert_same_episode(r, want)
    # in the order asked for; 6..9 straddles the boundary at 8; part B's pieces (9, 10), (8, 9) come back in order
    got = list(both.episodes_in([(9, 11), (6, 10), (2, 3)], decode_images=False))
    assert [e["episode_index"] for e in got] == [9, 10, 6, 7, 8, 9, 2]
    for e in got:
        assert_same_episode(e, alone[e["episode_index"]])
    assert [e["episode_index"] for e in both.episodes(7, 9, decode_images=False)] == [7, 8]
    assert both.describe(9) == f"{part_b}: episode 1"
    assert both.fingerprint() == {"parts": [open_rlds(tiny_dataset).fingerprint(), open_rlds(part_b).fingerprint()],
                                  "num_episodes": 11}
    assert open_rlds([part_b, tiny_dataset]).fingerprint() != both.fingerprint()  # order matters: cached stats too


def test_clip_loader_over_two_datasets(tiny_dataset, part_b, alone, tmp_path):
    """data.dir=[a,b] through the hydra config: statistics over every episode of both, clips from both."""
    import torch

    from worldmodel.cli import compose
    from worldmodel.data import build_clip_loader

    cfg = compose("finetune_rt1", ["data=sim", f"data.dir=[{tiny_dataset},{part_b}]", "data.num_workers=0",
                                   "data.epochs=1", "data.context_frames=1", "data.future_frames=2",
                                   "data.shuffle_buffer=4", "data.block_episodes=2", "model=tiny"]).data
    loader, stats = build_clip_loader(cfg, batch_size=3, run_dir=tmp_path / "run")
    acts = np.concatenate([episode_actions(e["steps"]["action"]) for e in alone]).astype(np.float64)
    assert stats.count == len(acts) == sum(LENGTHS) + sum(LENGTHS_B)
    np.testing.assert_allclose(stats.mean, acts.mean(0), atol=1e-9)
    np.testing.assert_allclose(stats.std, acts.std(0), atol=1e-9)
    np.testing.assert_allclose(stats.q01, np.quantile(acts, 0.01, axis=0))
    np.testing.assert_allclose(stats.q99, np.quantile(acts, 0.99, axis=0))
    assert [p["path"] for p in stats.source["parts"]] == [str(tiny_dataset), str(part_b)]
    clips = [(tuple(i), lang) for b in loader for i, lang in zip(b["clip_id"].tolist(), b["language"], strict=True)]
    lengths = [*LENGTHS, *LENGTHS_B]
    assert sorted(i for i, _ in clips) == sorted((e, s) for e, n in enumerate(lengths) for s in range(n - 2))
    assert {e for (e, _), _ in clips} >= {8, 9, 10}  # part B's episodes, by their global index
    for (e, _), lang in clips:
        want = alone[e]["steps"]["observation"]["natural_language_embedding"][0]
        torch.testing.assert_close(lang, torch.from_numpy(want))
    # seeded: the same stream again, and a resumed one continues it exactly
    ids = [tuple(i) for b in loader for i in b["clip_id"].tolist()]
    assert ids == [i for i, _ in clips] and ids != sorted(ids)
    resumed = ClipDataset(loader.dataset.path, loader.dataset.config, stats, rank=0, world_size=1)
    resumed.set_resume({0: (0, 5)})
    assert [tuple(c["clip_id"].tolist()) for c in resumed] == ids[5:]


def test_missing_part_is_named(tiny_dataset, tmp_path):
    from worldmodel.cli import compose
    from worldmodel.errors import UserError
    from worldmodel.training.commands import check_data

    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        open_rlds([tiny_dataset, missing])
    cfg = compose("finetune_rt1", ["data=sim", f"data.dir=[{tiny_dataset},{missing}]"])
    with pytest.raises(UserError, match=str(missing)):
        check_data(cfg, "finetune rt1")
    assert check_data(compose("finetune_rt1", ["data=sim", f"data.dir=[{tiny_dataset},{tiny_dataset}]"]),
                      "finetune rt1") == [tiny_dataset, tiny_dataset]


def test_one_element_list_is_the_plain_path(tiny_dataset, tiny_stats):
    from worldmodel.data.config import DataConfig
    from worldmodel.data.pipeline import dataset_path

    one, plain = open_rlds([str(tiny_dataset)]), open_rlds(str(tiny_dataset))
    assert type(one) is RLDSDataset and one.path == plain.path == tiny_dataset
    assert one.fingerprint() == plain.fingerprint()  # cached statistics stay valid
    assert dataset_path({"dir": [str(tiny_dataset)]}) == dataset_path({"dir": str(tiny_dataset)}) == tiny_dataset
    cfg = ClipConfig(1, 2, image_size=(16, 20), shuffle_buffer=4, block_episodes=2)
    listed, plain_ids = ([tuple(c["clip_id"].tolist()) for c in ClipDataset(p, cfg, tiny_stats)]
                         for p in ([tiny_dataset], tiny_dataset))
    assert listed == plain_ids
    assert DataConfig(dir=[str(tiny_dataset)]).dir == [str(tiny_dataset)]
    with pytest.raises(ValueError, match="data.dir must be a path or a list of paths"):
        DataConfig(dir=[str(tiny_dataset), 3])
    with pytest.raises(ValueError, match="data.dir is not set"):
        dataset_path({"dir": []})


def test_parts_must_agree_on_what_the_loader_reads(tiny_dataset, part_b, tmp_path):
    other = tmp_path / "other" / "tiny_sim" / "0.1.0"
    shutil.copytree(part_b, other)
    spec = json.loads((other / "features.json").read_text())
    obs = (spec["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
           ["observation"]["featuresDict"]["features"])
    obs["gripper_closed"]["tensor"]["shape"]["dimensions"] = ["2"]
    (other / "features.json").write_text(json.dumps(spec))
    open_rlds(other, strict=False)  # fine alone (not a key the non-strict schema check requires)
    with pytest.raises(DatasetError, match=r"steps/observation/gripper_closed: shape \(1,\) vs \(2,\)") as err:
        open_rlds([tiny_dataset, other], strict=False)
    assert str(tiny_dataset) in str(err.value) and str(other) in str(err.value)
    a, b = open_rlds(tiny_dataset), open_rlds(part_b)
    b.language_dim = lambda: 384  # open_rlds itself refuses a non-512 embedding; a part built elsewhere may not
    with pytest.raises(DatasetError, match="language embeddings of 512 vs 384 dims") as err:
        ConcatRLDS([a, b])
    assert str(tiny_dataset) in str(err.value) and str(part_b) in str(err.value)


def test_mixture_weights_set_each_dataset_share_of_the_clips(tiny_dataset, part_b, tiny_stats):
    """data.weights=[1, 3]: the second dataset (3 of the 11 episodes) gives ~3/4 of the clips, not 3/11; the stream
    stays seeded and resumes exactly; a weight list that does not match data.dir is refused, naming data.weights."""
    def share_b(weights):
        cfg = ClipConfig(1, 2, image_size=(16, 20), clips_per_episode=4, epochs=10, shuffle_buffer=8,
                         weights=weights)
        ids = [tuple(c["clip_id"].tolist()) for c in ClipDataset([tiny_dataset, part_b], cfg, tiny_stats)]
        return ids, np.mean([e >= len(LENGTHS) for e, _ in ids])

    ids, share = share_b([1.0, 3.0])
    assert abs(share - 0.75) < 0.04, share
    assert abs(len(ids) / 10 - 4 * 11) < 4  # the epoch's size is kept in expectation
    long_enough = sum(n >= 3 for n in LENGTHS)  # an episode shorter than a clip gives none
    assert abs(share_b(None)[1] - 3 / (long_enough + 3)) < 1e-9  # unweighted: every episode draws 4
    assert abs(share_b([1.0, 0.0])[1]) < 1e-9
    assert share_b([1.0, 3.0])[0] == ids
    cfg = ClipConfig(1, 2, image_size=(16, 20), clips_per_episode=4, epochs=1, weights=[1.0, 3.0])
    whole = [tuple(c["clip_id"].tolist()) for c in ClipDataset([tiny_dataset, part_b], cfg, tiny_stats)]
    resumed = ClipDataset([tiny_dataset, part_b], cfg, tiny_stats)
    resumed.set_resume({0: (0, 7)})
    assert [tuple(c["clip_id"].tolist()) for c in resumed] == whole[7:]
    with pytest.raises(ValueError, match=r"data\.weights has 3 entries but data\.dir names 2"):
        ClipDataset([tiny_dataset, part_b], ClipConfig(1, 2, clips_per_episode=4, weights=[1, 1, 1]), tiny_stats)
    with pytest.raises(ValueError, match=r"data\.weights needs data\.clips_per_episode"):
        ClipConfig(1, 2, weights=[1, 1])
    with pytest.raises(ValueError, match=r"data\.weights must be non-negative"):
        ClipConfig(1, 2, clips_per_episode=4, weights=[1, -1])


def test_imitate_flags_mark_the_clips_of_each_dataset(tiny_dataset, part_b, tiny_stats):
    """data.imitate=[true, false]: every clip of the second dataset carries imitate=False, the first's True; without
    the key the clips carry none; a flag list that does not match data.dir (or imitates nothing) is refused."""
    cfg = ClipConfig(1, 2, image_size=(16, 20), epochs=1, imitate=[True, False])
    clips = list(ClipDataset([tiny_dataset, part_b], cfg, tiny_stats))
    assert {bool(c["imitate"]) for c in clips} == {True, False}
    assert all(bool(c["imitate"]) == (int(c["clip_id"][0]) < len(LENGTHS)) for c in clips)
    assert "imitate" not in next(iter(ClipDataset([tiny_dataset, part_b], ClipConfig(1, 2), tiny_stats)))
    with pytest.raises(ValueError, match=r"data\.imitate has 3 entries but data\.dir names 2"):
        ClipDataset([tiny_dataset, part_b], ClipConfig(1, 2, imitate=[True, False, True]), tiny_stats)
    with pytest.raises(ValueError, match=r"data\.imitate: no dataset is imitated"):
        ClipConfig(1, 2, imitate=[False, False])
    with pytest.raises(ValueError, match=r"data\.imitate must be a list of true / false"):
        ClipConfig(1, 2, imitate=[1, 0])


def test_mixture_weights_through_the_data_config(tiny_dataset, part_b, tmp_path):
    """data.weights from the command line reaches the training stream, and the trainer's fixed validation clip
    (every start, in episode order) ignores it."""
    from worldmodel.cli import compose
    from worldmodel.data import build_clip_loader
    from worldmodel.training.samples import validation_clip

    cfg = compose("finetune_rt1", ["data=sim", f"data.dir=[{tiny_dataset},{part_b}]", "data.weights=[0,1]",
                                   "data.clips_per_episode=3", "data.num_workers=0", "data.epochs=2",
                                   "data.shuffle_buffer=4", "model=tiny"]).data
    loader, stats = build_clip_loader(cfg, batch_size=4, run_dir=tmp_path / "run")
    assert loader.dataset.config.weights == [0.0, 1.0]
    assert {e for b in loader for e, _ in b["clip_id"].tolist()} == {8, 9, 10}  # only part B's episodes
    first = next(iter(ClipDataset([tiny_dataset, part_b], ClipConfig(1, 2, image_size=tuple(cfg.image_size),
                                                                     shuffle=False), stats)))
    assert first["clip_id"].tolist() == [0, 0]
    val = validation_clip(cfg, stats)
    for key in ("frames", "actions"):
        np.testing.assert_array_equal(val[key].numpy(), first[key].numpy())
