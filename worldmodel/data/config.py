"""The ``data`` group (one dataset or several read as one, plus the clips cut from it) and the settings of
``worldmodel data sim``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from worldmodel.data.clips import ClipConfig

SIM_DATASET = "tabletop_sim"  # tfds name of the simulated episodes written by `worldmodel data sim`


def _all_tasks() -> list[str]:
    from envs.tasks import TASK_CLASSES  # the one task list

    return list(TASK_CLASSES)


def _start_jitter() -> list[float]:
    from envs.tabletop import START_JITTER  # the env's default

    return list(START_JITTER)


@dataclass
class DataConfig(ClipConfig):
    """Where the RLDS dataset is and how clips are cut and streamed (the ``data`` config group).

    The clip fields (``context_frames`` ... ``epochs``) are those of :class:`ClipConfig`; this adds the dataset
    and loader settings. Presets: ``configs/data/rt1.yaml`` (the real RT-1 release) and ``sim.yaml``.

    Attributes:
        dir: folder holding ``<name>/<version>/`` (or the version folder itself); read with
            ``tfds.builder_from_directory``, never ``tfds.builder``. Or a list of such folders
            (``data.dir=[a,b]``, e.g. expert plus DAgger episodes): their episodes are concatenated in order (those
            of ``a`` first), and ``name``, ``version`` and ``strict`` apply to each; a one-element list is the same
            as its path.
        name: tfds dataset name (None: the folder's own name).
        version: dataset version folder.
        strict: require exactly the RT-1 ``fractal20220817_data`` features (False: any RLDS dataset with images
            and language embeddings, for video pretraining).
        num_workers: DataLoader worker processes per rank.
        stats_max_episodes: action statistics from the first N episodes (None: all).
        epochs: as :class:`ClipConfig`, but a training stream is endless by default (the trainer counts steps).
    """

    dir: Any = None  # str | list[str] | None (omegaconf has no union of a string and a list): see dataset_dirs
    name: str | None = None
    version: str = "0.1.0"
    strict: bool = True
    num_workers: int = 1
    stats_max_episodes: int | None = None
    epochs: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dir is not None and not isinstance(self.dir, str):
            self.dir = dataset_dirs(self.dir)
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.stats_max_episodes is not None and self.stats_max_episodes < 1:
            raise ValueError(f"data.stats_max_episodes must be >= 1 or null, got {self.stats_max_episodes}")


def dataset_dirs(value: Any) -> list[str]:
    """``data.dir`` as a list of paths: ``[]`` when unset, ``[value]`` for one path, the paths of a list (or
    hydra's ListConfig) in order.

    Raises:
        ValueError: naming ``data.dir``, when it is neither a path nor a list of paths.
    """
    if value is None or isinstance(value, str | os.PathLike):
        items = [value] if value is not None and str(value) else []
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise ValueError(f"data.dir must be a path or a list of paths, got {value!r}")
    bad = [v for v in items if not isinstance(v, str | os.PathLike) or not str(v)]
    if bad:
        raise ValueError(f"data.dir must be a path or a list of paths, got {bad[0]!r} in {list(items)!r}")
    return [os.fspath(v) for v in items]


def data_config(node: Any) -> DataConfig:
    """A :class:`DataConfig` from a ``data`` node or mapping; keys it lacks keep the dataclass defaults."""
    names = {f.name for f in fields(DataConfig)}
    return DataConfig(**{k: node[k] for k in node if k in names})


@dataclass
class SimPolicyConfig:
    """The policy that rolls out the simulated episodes.

    Attributes:
        name: ``scripted`` (privileged experts) or ``random``.
        noise: the scripted expert's action noise in [0, 1] (ignored by ``random``).
        driver: a world-model checkpoint whose ``dit`` policy drives the episodes while ``name`` (the scripted
            expert) labels every visited state with its own action: DAgger's data, the states the model's own
            mistakes lead to, with the expert's correction recorded as the action (None: the expert drives).
        driver_beta: with a ``driver``, the share of steps on which the expert's label is executed instead of the
            model's action (DAgger's beta; 0: the model drives alone).
    """

    name: str = "scripted"
    noise: float = 0.0
    driver: str | None = None
    driver_beta: float = 0.0


@dataclass
class SimDataConfig:
    """Settings of ``worldmodel data sim`` (``configs/data_sim.yaml``; checked by ``worldmodel.data.sim``).

    Attributes:
        out: root folder; the dataset lands in ``<out>/<name>/<version>/``.
        name: tfds dataset name (snake_case).
        version: dataset version.
        episodes: episode i runs ``tasks[i % len(tasks)]`` with seed ``seed + i``.
        tasks: short task names (default: every task).
        seed: seed of episode 0.
        image_size: render resolution [H, W]; stored images are always 256x320 (upsampled if smaller).
        max_steps: optional cap on actions per episode (None: the task's step limit).
        start_jitter: per-axis bound [x, y, z] (metres) of the uniform offset of the arm's start pose
            (``envs.tabletop.START_JITTER`` by default; wider makes the pose say less about where the arm goes).
        policy: the rollout policy.
        workers: rollout processes (each loads MuJoCo and the sentence encoder once).
        start_method: multiprocessing start method for ``workers > 1``.
        num_shards: tfrecord shards (None: tfds chooses by size).
        overwrite: replace an existing ``<out>/<name>/<version>``.
        progress: show a progress bar.
    """

    out: str = "outputs/sim_data"
    name: str = SIM_DATASET
    version: str = "0.1.0"
    episodes: int = 60
    tasks: list[str] = field(default_factory=_all_tasks)
    seed: int = 0
    image_size: tuple[int, int] = (256, 320)
    max_steps: int | None = None
    start_jitter: list[float] = field(default_factory=_start_jitter)
    policy: SimPolicyConfig = field(default_factory=SimPolicyConfig)
    workers: int = 1
    start_method: str = "spawn"
    num_shards: int | None = None
    overwrite: bool = False
    progress: bool = True
