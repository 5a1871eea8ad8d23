"""Write episodes as an RLDS dataset in the RT-1 ``fractal20220817_data`` schema (a tfds dataset builder).

Output layout is the one tfds and the real release use: ``DIR/<name>/<version>/`` with ``dataset_info.json``,
``features.json`` and ``<name>-train.tfrecord-XXXXX-of-YYYYY`` shards, written with ``disable_shuffling=True``
so episode ``i`` is example ``i``.

Fill values for fields a simulator cannot know (also in ``docs/data.md``):

==========================================  ==============================================================
field                                       value written
==========================================  ==============================================================
action/base_displacement_vector (2)         0 (the base does not move)
action/base_displacement_vertical_rotation  0
action/terminate_episode (3, int32)         [0, 1, 0] on every step, [1, 0, 0] on the last step (as RT-1)
action/* on the last step                   0 (the final observation has no action), terminate [1, 0, 0]
observation/gripper_closedness_commanded    the step's gripper_closedness_action (the command issued)
observation/height_to_bottom                z of base_pose_tool_reached (tool height in the base frame)
observation/orientation_start (4)           tool quaternion (x, y, z, w) at the episode's first step
observation/src_rotation (4)                identity quaternion [0, 0, 0, 1]
observation/vector_to_go, rotation_delta_to_go, orientation_box, robot_orientation_positions_box,
workspace_bounds                            0
reward                                      env reward of the transition leaving this step (1 on success)
is_terminal                                 True on the last step iff the episode ended in success
aspects                                     success = env success; feasible = has_aspects = True; others False
attributes                                  env/env_name = task index / gym id; task_family(_name) = same;
                                            collection_mode_name = policy (e.g. "scripted noise=0.1");
                                            data_type_name = "sim"; location_name = "mujoco"; other ints 0
==========================================  ==============================================================
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.data import schema
from worldmodel.data.tf_compat import import_tfds


@dataclass
class Episode:
    """One rolled-out episode, before conversion to the RT-1 schema. T = number of observations.

    Attributes:
        images: (T, H, W, 3) uint8 observations; resized to 256×320 on write if H×W differs.
        actions: (T - 1, 7) float32 actions taken (world_vector, rotation_delta, gripper_closedness_action).
        rewards: (T - 1,) float32 reward of each transition.
        instruction: natural-language instruction.
        language: (512,) float32 instruction embedding.
        base_pose_tool_reached: (T, 7) float32 tool pose (xyz, quaternion xyzw) in the base frame.
        gripper_closed: (T, 1) float32 in [0, 1].
        success: whether the episode ended in success (sets ``is_terminal`` on the last step).
        task: short task name; ``task_index`` its index; ``env_name`` the gym id.
        collection_mode: policy description, e.g. ``"scripted noise=0.1"``.
    """

    images: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    instruction: str
    language: np.ndarray
    base_pose_tool_reached: np.ndarray
    gripper_closed: np.ndarray
    success: bool = False
    task: str = ""
    task_index: int = 0
    env_name: str = ""
    collection_mode: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = len(self.images)
        checks = {
            "images": (self.images.ndim == 4 and self.images.shape[-1] == 3 and self.images.dtype == np.uint8,
                       "(T, H, W, 3) uint8"),
            "actions": (self.actions.shape == (t - 1, schema.ACTION_DIM), f"({t - 1}, 7)"),
            "rewards": (self.rewards.shape == (t - 1,), f"({t - 1},)"),
            "language": (self.language.shape == (schema.EMBEDDING_DIM,), "(512,)"),
            "base_pose_tool_reached": (self.base_pose_tool_reached.shape == (t, 7), f"({t}, 7)"),
            "gripper_closed": (self.gripper_closed.shape == (t, 1), f"({t}, 1)"),
        }
        for name, (ok, want) in checks.items():
            if not ok:
                arr = getattr(self, name)
                raise ValueError(f"Episode.{name}: shape {arr.shape} dtype {arr.dtype}, expected {want}")
        if t < 2:
            raise ValueError(f"Episode has {t} observation(s); an episode needs at least 2")
        if not np.isfinite(self.actions).all():
            bad = np.argwhere(~np.isfinite(self.actions))[0]
            raise ValueError(f"Episode.actions: non-finite value at step {bad[0]}, dim {bad[1]}")


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """JPEG-encode one (256, 320, 3) uint8 frame, resizing other sizes (bilinear) first.

    Quality 95 is what ``tf.image.encode_jpeg`` (tfds' own encoder) uses by default.
    """
    from PIL import Image

    h, w, _ = schema.IMAGE_SHAPE
    pil = Image.fromarray(np.ascontiguousarray(image))
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def episode_example(ep: Episode) -> dict[str, Any]:
    """Convert an :class:`Episode` to a tfds example of the fractal schema (images JPEG-encoded here).

    Returns:
        Nested dict ``{"aspects", "attributes", "steps"}``; ``steps`` holds per-key arrays with T rows.
    """
    t = len(ep.images)
    last = np.arange(t) == t - 1
    act = np.zeros((t, schema.ACTION_DIM), np.float32)
    act[:-1] = ep.actions
    terminate = np.where(last[:, None], schema.TERMINATE_LAST, schema.TERMINATE_RUNNING).astype(np.int32)
    pose = ep.base_pose_tool_reached.astype(np.float32)
    zeros = lambda *s: np.zeros((t, *s), np.float32)  # noqa: E731
    src_rotation = np.tile(np.array([0, 0, 0, 1], np.float32), (t, 1))
    observation = {
        "base_pose_tool_reached": pose,
        "gripper_closed": ep.gripper_closed.astype(np.float32),
        "gripper_closedness_commanded": act[:, 6:7].copy(),
        "height_to_bottom": pose[:, 2:3].copy(),
        "image": [encode_jpeg(img) for img in ep.images],
        "natural_language_embedding": np.tile(ep.language.astype(np.float32), (t, 1)),
        "natural_language_instruction": [ep.instruction] * t,
        "orientation_box": zeros(2, 3),
        "orientation_start": np.tile(pose[0, 3:7], (t, 1)),
        "robot_orientation_positions_box": zeros(3, 3),
        "rotation_delta_to_go": zeros(3),
        "src_rotation": src_rotation,
        "vector_to_go": zeros(3),
        "workspace_bounds": zeros(3, 3),
    }
    observation.update({k: v for k, v in ep.extra.items() if k in schema.OBSERVATION_KEYS})
    reward = np.zeros(t, np.float32)
    reward[:-1] = ep.rewards
    steps = {
        "action": {
            "base_displacement_vector": zeros(2),
            "base_displacement_vertical_rotation": zeros(1),
            "gripper_closedness_action": act[:, 6:7],
            "rotation_delta": act[:, 3:6],
            "terminate_episode": terminate,
            "world_vector": act[:, 0:3],
        },
        "is_first": np.arange(t) == 0,
        "is_last": last,
        "is_terminal": last & bool(ep.success),
        "observation": observation,
        "reward": reward,
    }
    return {
        "aspects": {"already_success": False, "feasible": True, "has_aspects": True,
                    "success": bool(ep.success), "undesirable": False},
        "attributes": {
            "collection_mode": 0, "collection_mode_name": ep.collection_mode,
            "data_type": 0, "data_type_name": "sim",
            "env": int(ep.task_index), "env_name": ep.env_name,
            "location": 0, "location_name": "mujoco",
            "objects_family": 0, "objects_family_name": "",
            "task_family": int(ep.task_index), "task_family_name": ep.task,
        },
        "steps": steps,
    }


def _make_builder_class(name: str, version: str, description: str, metadata: dict | None,
                        examples: Iterable[dict[str, Any]]) -> type:
    tfds = import_tfds()

    class _SimRLDS(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(version)
        RELEASE_NOTES = {version: "Simulated episodes written by worldmodel.data.writer."}

        def _info(self) -> Any:
            return tfds.core.DatasetInfo(
                builder=self, description=description, features=schema.features(),
                disable_shuffling=True,
                metadata=tfds.core.MetadataDict(metadata or {}),
            )

        def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
            yield from enumerate(examples)

    _SimRLDS.name = name
    return _SimRLDS


def dataset_dir(root: str | Path, name: str, version: str = schema.VERSION) -> Path:
    """``root/<name>/<version>``, the directory ``open_rlds`` reads."""
    return Path(root).expanduser() / name / version


def write_dataset(episodes: Iterable[Episode | dict[str, Any]], out: str | Path, name: str,
                  version: str = schema.VERSION, *, description: str = "", metadata: dict | None = None,
                  num_episodes: int | None = None, num_shards: int | None = None, overwrite: bool = False,
                  progress: bool = True) -> Path:
    """Write episodes to ``out/<name>/<version>/`` as a tfds (RLDS) dataset in the fractal schema.

    Args:
        episodes: :class:`Episode` objects, or examples already converted by :func:`episode_example` (which
            lets worker processes do the JPEG encoding). Consumed lazily, one at a time.
        out: root directory (``data_dir`` in tfds terms).
        name: dataset name, a snake_case identifier (``fractal20220817_data`` gives the release's layout).
        version: ``"MAJOR.MINOR.PATCH"``.
        description: stored in ``dataset_info.json``.
        metadata: JSON-serialisable dict stored as ``metadata.json`` (generation config, seeds...).
        num_episodes: expected count, for the progress bar only.
        num_shards: force this many tfrecord shards (default: tfds' size-based choice).
        overwrite: replace an existing ``out/<name>/<version>``; otherwise that is an error. The new dataset is
            written beside the old one (``out/.<name>-<version>.staging-<pid>/``) and swapped in only when
            complete, so a run killed (or failing) midway leaves the old dataset as it was.
        progress: show a tqdm bar.

    Returns:
        The dataset directory ``out/<name>/<version>``.
    """
    from tqdm import tqdm

    tfds = import_tfds()

    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"dataset name {name!r} must be a lower-case snake_case identifier")
    root = Path(out).expanduser()
    target = dataset_dir(root, name, version)
    _recover_interrupted_swap(target)
    if target.exists():
        if not overwrite:
            raise ValueError(f"{target} already exists; pass overwrite=true (or another out=/name=)")
        if not (target / "dataset_info.json").exists() and any(target.iterdir()):
            raise ValueError(f"refusing to overwrite {target}: not empty and not a tfds dataset directory")
    for stale in root.glob(f".{name}-{version}.staging-*"):  # left by killed writers; never read
        shutil.rmtree(stale, ignore_errors=True)
    staging = root / f".{name}-{version}.staging-{os.getpid()}"
    staging.mkdir(parents=True)

    def converted() -> Iterator[dict[str, Any]]:
        bar = tqdm(total=num_episodes, desc=f"writing {name}", unit="ep", disable=not progress)
        with bar:
            for ep in episodes:
                yield episode_example(ep) if isinstance(ep, Episode) else ep
                bar.update(1)

    builder_cls = _make_builder_class(name, version, description, metadata, converted())
    config = tfds.download.DownloadConfig(try_download_gcs=False, num_shards=num_shards,
                                          compute_stats=tfds.download.ComputeStatsMode.SKIP)
    tfds.disable_progress_bar()  # ours is the one bar that counts episodes
    try:
        builder_cls(data_dir=str(staging)).download_and_prepare(download_config=config)
        _swap_in(dataset_dir(staging, name, version), target)
    finally:
        tfds.enable_progress_bar()
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replaced(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.replaced-*")) if target.parent.is_dir() else []


def _swap_in(built: Path, target: Path) -> None:
    """Move a complete dataset directory to ``target``, replacing what is there (two renames: the old one is
    set aside first and deleted last)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    if target.exists():
        target.rename(old)
    built.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _recover_interrupted_swap(target: Path) -> None:
    """Undo a swap killed between its two renames (the old dataset set aside, the new one not yet in place)."""
    for old in _replaced(target):
        if not target.exists() and (old / "dataset_info.json").is_file():
            old.rename(target)
        else:
            shutil.rmtree(old, ignore_errors=True)
