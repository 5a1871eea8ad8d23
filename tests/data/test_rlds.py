"""Writer → reader round trip, plain-tfds readability, the release layout, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from worldmodel.data import DatasetError, episode_actions, open_rlds, schema
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.tf_compat import import_tfds
from worldmodel.data.writer import episode_example, write_dataset

JPEG_MEAN_ABS_TOL = 3.0  # quality-95 JPEG of smooth synthetic frames: mean |error| well below this


def assert_episode_equal(read: dict, ep, index: int) -> None:
    """A read-back episode equals the rolled-out one (images within JPEG tolerance)."""
    steps, t = read["steps"], len(ep.images)
    assert read["episode_index"] == index
    acts = episode_actions(steps["action"])
    assert acts.shape == (t, 7)
    np.testing.assert_array_equal(acts[:-1], ep.actions)
    np.testing.assert_array_equal(acts[-1], 0)
    term = steps["action"]["terminate_episode"]
    np.testing.assert_array_equal(term[:-1], np.tile([0, 1, 0], (t - 1, 1)))
    np.testing.assert_array_equal(term[-1], [1, 0, 0])
    np.testing.assert_array_equal(steps["is_first"], np.arange(t) == 0)
    np.testing.assert_array_equal(steps["is_last"], np.arange(t) == t - 1)
    np.testing.assert_array_equal(steps["is_terminal"], (np.arange(t) == t - 1) & ep.success)
    np.testing.assert_array_equal(steps["reward"][:-1], ep.rewards)
    obs = steps["observation"]
    np.testing.assert_array_equal(obs["base_pose_tool_reached"], ep.base_pose_tool_reached)
    np.testing.assert_array_equal(obs["gripper_closed"], ep.gripper_closed)
    np.testing.assert_array_equal(obs["natural_language_embedding"], np.tile(ep.language, (t, 1)))
    assert {s.decode() for s in obs["natural_language_instruction"]} == {ep.instruction}
    images = obs["image"]
    assert images.shape == (t, 256, 320, 3) and images.dtype == np.uint8
    # The writer stores 256x320: the 64x80 source upsampled (bilinear), then JPEG-encoded.
    expected = np.stack([np.asarray(Image.fromarray(img).resize((320, 256), Image.BILINEAR))
                         for img in ep.images])
    error = np.abs(images.astype(float) - expected)
    assert error.mean() < JPEG_MEAN_ABS_TOL and np.percentile(error, 99) < 8 * JPEG_MEAN_ABS_TOL
    assert bool(read["aspects"]["success"]) == ep.success
    assert read["attributes"]["task_family_name"].decode() == ep.task


def test_round_trip_through_open_rlds(tiny_dataset, episodes):
    ds = open_rlds(tiny_dataset)
    assert ds.num_episodes == len(episodes) and len(ds.shard_files()) == 3
    read = list(ds.episodes())
    assert len(read) == len(episodes)
    for i, (r, ep) in enumerate(zip(read, episodes, strict=True)):
        assert_episode_equal(r, ep, i)
    mid = list(ds.episodes(3, 5, decode_images=False))
    assert [e["episode_index"] for e in mid] == [3, 4]
    assert isinstance(mid[0]["steps"]["observation"]["image"][0], bytes)


def test_readable_by_plain_tfds(tiny_dataset, episodes):
    tfds = import_tfds()
    builder = tfds.builder_from_directory(str(tiny_dataset))
    assert builder.info.disable_shuffling
    eps = list(tfds.as_numpy(builder.as_dataset(split="train")))
    assert len(eps) == len(episodes)
    for ep, src in zip(eps, episodes, strict=True):  # disable_shuffling keeps the written order
        wv = np.stack([s["action"]["world_vector"] for s in ep["steps"]])
        np.testing.assert_array_equal(wv[:-1], src.actions[:, :3])
    assert schema.diff_features(builder.info.features) == []


def test_release_layout_loads(tmp_path):
    root = tmp_path / "tensorflow_datasets"
    path = write_dataset((synthetic_episode(i, 5) for i in range(3)), root, schema.DATASET_NAME,
                         num_shards=2, progress=False)
    assert path == root / "fractal20220817_data" / "0.1.0"
    names = sorted(p.name for p in path.iterdir())
    assert "fractal20220817_data-train.tfrecord-00000-of-00002" in names
    assert {"dataset_info.json", "features.json"} <= set(names)
    for where in ((root, "fractal20220817_data", "0.1.0"), (path, None, None)):
        ds = open_rlds(*where)
        assert (ds.name, ds.version, ds.num_episodes) == ("fractal20220817_data", "0.1.0", 3)


def test_refuses_to_overwrite(tiny_dataset):
    with pytest.raises(ValueError, match="already exists"):
        write_dataset(iter([]), tiny_dataset.parents[1], "tiny_sim", progress=False)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        open_rlds(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no dataset_info.json"):
        open_rlds(tmp_path / "empty")


def _copy(src, tmp_path):
    dst = tmp_path / "copy" / "tiny_sim" / "0.1.0"
    shutil.copytree(src, dst)
    return dst


def test_missing_observation_key(tiny_dataset, tmp_path):
    dst = _copy(tiny_dataset, tmp_path)
    spec = json.loads((dst / "features.json").read_text())
    obs = (spec["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
           ["observation"]["featuresDict"]["features"])
    del obs["gripper_closed"]
    (dst / "features.json").write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match=r"missing key steps/observation/gripper_closed") as err:
        open_rlds(dst)
    assert str(dst) in str(err.value)
    open_rlds(dst, strict=False)  # the loader's own keys are all there


def test_truncated_shard(tiny_dataset, tmp_path):
    dst = _copy(tiny_dataset, tmp_path)
    shard = sorted(dst.glob("*.tfrecord-*"))[1]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    with pytest.raises(DatasetError, match="truncated tfrecord shard") as err:
        open_rlds(dst)
    assert str(shard) in str(err.value)
    lazy = open_rlds(dst, verify_shards=False)  # without the up-front check, reading still fails clearly
    with pytest.raises(DatasetError, match=f"{dst}: corrupt or truncated shard"):
        list(lazy.episodes(decode_images=False))


def test_nan_actions(tmp_path):
    good = [episode_example(synthetic_episode(i, 5)) for i in range(3)]
    good[1]["steps"]["action"]["rotation_delta"][2, 1] = np.nan
    path = write_dataset(iter(good), tmp_path, "nan_sim", progress=False)
    ds = open_rlds(path)
    with pytest.raises(DatasetError,
                       match=r"episode 1: non-finite value in steps/action/rotation_delta at step 2"):
        list(ds.episodes(decode_images=False))
    from worldmodel.data import compute_action_stats

    with pytest.raises(DatasetError, match="non-finite"):
        compute_action_stats(ds)
    from worldmodel.data.writer import Episode

    ep = synthetic_episode(0, 4)
    ep.actions[1, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite value at step 1"):
        Episode(**{k: getattr(ep, k) for k in Episode.__dataclass_fields__})


def test_release_layout_through_the_rt1_config(tmp_path):
    """data=rt1 (composed by hydra) + data.dir=<root> → stats cached in the run dir → clips."""
    from worldmodel.cli import compose
    from worldmodel.data import build_clip_loader

    root = tmp_path / "tensorflow_datasets"
    write_dataset((synthetic_episode(i, 6) for i in range(4)), root, schema.DATASET_NAME, progress=False)
    cfg = compose("finetune_rt1", ["data=rt1", f"data.dir={root}", "data.num_workers=0",
                                   "model=tiny"]).data  # tiny: 32x40 clips
    loader, stats = build_clip_loader(cfg, batch_size=2, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "action_stats.json").is_file() and stats.count == 4 * 6
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, cfg.context_frames + cfg.future_frames, 3, 32, 40)
    assert batch["actions"].shape == (2, cfg.future_frames, 7) and "_position" not in batch
