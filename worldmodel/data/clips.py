"""Clips for the world model: a sharded, shuffled, resumable torch ``IterableDataset`` over RLDS episodes.

A clip is a window of K + F consecutive steps of one episode starting at step ``s`` (starts ``0, stride,
2·stride, …`` with ``s + K + F <= T``; shorter episodes give no clip):

- ``frames`` (K+F, 3, H, W) float32 in [-1, 1]: observations ``s … s+K+F-1``, resized to the model resolution;
- ``actions`` (F, 7) float32, normalised by :class:`~worldmodel.data.stats.ActionStats`: action ``i`` is the
  step ``s+K-1+i`` action, the one that moves frame ``K-1+i`` to ``K+i`` (docs/architecture.md, "Actions and
  pixels"); absent when video-only;
- ``language`` (512,) float32: the episode's ``natural_language_embedding``;
- ``instruction`` (L, 384) float32 when ``instruction_tokens = L > 0``: per-wordpiece states of the episode's
  ``natural_language_instruction`` (:func:`worldmodel.language.instruction_tokens`, zero rows = padding);
- ``state`` (K, 8) float32 when ``state`` is on: the robot state at the K context frames
  (``base_pose_tool_reached``, ``gripper_closed``), normalised by the statistics;
- ``progress`` (F,) float32: ``(s+K+i) / (T-1)``, the progress of each future frame;
- ``clip_id`` (2,) int64: (episode index, start step);
- ``_position`` (3,) int64: (shard, epoch, index in the shard's epoch), used by :class:`ClipLoader` to resume.

The episodes may come from several datasets read as one (``data.dir=[a, b]``, a
:class:`~worldmodel.data.reader.ConcatRLDS`): episode indices are then global, those of ``a`` first.

Sharding: the episodes are cut into ``world_size × num_workers`` contiguous ranges, one per (DDP rank,
DataLoader worker), so every clip is produced by exactly one worker once per epoch. Shuffling: per epoch and
shard, the shard's episode blocks are read in a seeded random order and clips pass through a shuffle buffer
(RNG seeded by ``(seed, epoch, shard)``: the same seed and layout give the same stream). Memory is bounded by
the buffer: it holds clip references into at most ``shuffle_buffer + block_episodes`` episodes whose images
stay JPEG bytes until a clip is yielded.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from worldmodel.data.reader import (
    ConcatRLDS,
    DatasetError,
    RLDSDataset,
    episode_actions,
    episode_states,
    open_rlds,
)
from worldmodel.data.stats import ActionStats
from worldmodel.io import pixels_to_model


@dataclass
class ClipConfig:
    """Clip geometry and stream settings.

    Attributes:
        context_frames: K (>= 1).
        future_frames: F (>= 1).
        stride: steps between consecutive clip starts in an episode (>= 1).
        image_size: (H, W) model resolution.
        video_only: yield no actions (pretraining on video).
        shuffle: shuffle blocks and clips (False: episode order, clips in order).
        shuffle_buffer: clips held for shuffling (>= 1).
        block_episodes: consecutive episodes read as one block; blocks are the unit of the per-epoch shuffle.
        seed: stream seed.
        epochs: epochs per ``iter()``; None: endless (each worker advances its own epochs).
        instruction_tokens: L, yield ``instruction`` token states (0: none). The trainer sets this and ``state``
            from the model config (``model.instruction_tokens``, ``model.state_dim``): the model decides.
        state: yield the normalised robot ``state`` of the context frames.
        clips_per_episode: 0: every start ``0, stride, 2·stride, …`` of every episode (long episodes weigh
            more); n > 0: n starts drawn uniformly per episode and epoch, so every episode weighs the same and
            the tasks are balanced when they have equally many episodes (as ``worldmodel data sim`` writes).
        max_episodes: read only the first N episodes (None: all; several datasets: the first N of their
            concatenation), e.g. for a learning curve over data size (``worldmodel data sim`` cycles through the
            tasks, so any prefix stays balanced).
        random_shift: augmentation: shift every frame of a clip by the same random (dy, dx) of at most this
            many pixels at model resolution, edges replicated (the random-shift / crop augmentation of DrQ and
            Diffusion Policy); 0: off. Drawn from the clip's stream position, so batches stay reproducible
            and a resumed run sees the same shifts.
        weights: mixture weights when several datasets are read as one (``data.dir=[a,b,...]``), one per dataset
            in order, like Octo's dataset ``sample_weights``: dataset ``d`` gives a share ``w_d / sum(w)`` of the
            clips whatever its episode count (its episodes draw ``clips_per_episode · share_d · N / N_d`` starts
            each, stochastically rounded, so the shares hold in expectation). None: every episode weighs the
            same. Needs ``clips_per_episode > 0``.
        imitate: one flag per dataset (``data.dir=[a,b,...]``, in order): whether its actions are demonstrations.
            Clips of a dataset with ``false`` (exploration or heavily perturbed "play" data, whose actions are not
            the task's) carry ``imitate=False`` and the trainer never gives them the ``policy`` verb nor the
            progress head: they teach the world model what actions do, not what to do. None: every dataset is
            imitated (no ``imitate`` key in the clips).
    """

    context_frames: int = 1
    future_frames: int = 2
    stride: int = 1
    image_size: tuple[int, int] = (64, 80)
    video_only: bool = False
    shuffle: bool = True
    shuffle_buffer: int = 256
    block_episodes: int = 8
    seed: int = 0
    epochs: int | None = 1
    instruction_tokens: int = 0
    state: bool = False
    clips_per_episode: int = 0
    max_episodes: int | None = None
    random_shift: int = 0
    weights: list[float] | None = None
    imitate: list[bool] | None = None

    def __post_init__(self) -> None:
        self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]
        for name in ("context_frames", "future_frames", "stride", "shuffle_buffer", "block_episodes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"data.image_size must be [H, W] with H, W >= 8, got {list(self.image_size)}")
        for name in ("instruction_tokens", "clips_per_episode", "random_shift"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ValueError(f"data.max_episodes must be >= 1 or null, got {self.max_episodes}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"data.epochs must be >= 1 or null, got {self.epochs}")
        if self.weights is not None:
            self.weights = [float(w) for w in self.weights]
            if not self.weights or min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ValueError(f"data.weights must be non-negative with a positive sum, got {self.weights}")
            if self.clips_per_episode < 1:
                raise ValueError("data.weights needs data.clips_per_episode > 0 (starts drawn per episode)")
        if self.imitate is not None:
            flags = list(self.imitate)
            if not flags or not all(isinstance(f, bool) for f in flags):
                raise ValueError(f"data.imitate must be a list of true / false, one per dataset, got {flags}")
            if not any(flags):
                raise ValueError("data.imitate: no dataset is imitated, the policy would learn nothing")
            self.imitate = flags

    @property
    def clip_length(self) -> int:
        """K + F."""
        return self.context_frames + self.future_frames


def decode_frame(jpeg: bytes, size: tuple[int, int]) -> np.ndarray:
    """Decode one JPEG and resize it to ``size``.

    Uses libjpeg's DCT scaling (``draft``) to decode at the smallest power-of-two reduction still >= ``size``.

    Args:
        jpeg: encoded bytes.
        size: (H, W).

    Returns:
        (H, W, 3) uint8.
    """
    from PIL import Image

    h, w = size
    img = Image.open(io.BytesIO(jpeg))
    img.draft("RGB", (w, h))
    img = img.convert("RGB")
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    return np.asarray(img)


def random_shift(frames: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Shift (T, H, W, C) frames by one random (dy, dx) in [-pad, pad]², replicating the edge pixels."""
    h, w = frames.shape[1:3]
    dy, dx = (int(v) for v in rng.integers(-pad, pad + 1, size=2))
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return padded[:, pad - dy:pad - dy + h, pad - dx:pad - dx + w]


def shard_range(num_episodes: int, shard: int, num_shards: int) -> tuple[int, int]:
    """Contiguous episode range ``[start, stop)`` of one shard (sizes differ by at most one)."""
    return shard * num_episodes // num_shards, (shard + 1) * num_episodes // num_shards


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ClipDataset(IterableDataset):
    """Clips of an RLDS dataset, sharded over DDP ranks and DataLoader workers.

    Args:
        path: dataset version directory, or a root with ``name``/``version``; or a list of them, read as one
            (see :func:`~worldmodel.data.reader.open_rlds`).
        config: :class:`ClipConfig`.
        stats: action statistics (required unless ``config.video_only``).
        rank, world_size: DDP layout; default from ``torch.distributed`` when initialised, else (0, 1).
        name, version: when ``path`` is a root.
        strict: require the exact fractal schema (see :func:`~worldmodel.data.reader.open_rlds`).
        verify_shards: check every shard's record headers on construction (skip if just done elsewhere).
    """

    def __init__(self, path: str | Path | Sequence[str | Path], config: ClipConfig, stats: ActionStats | None = None, *,
                 rank: int | None = None, world_size: int | None = None, name: str | None = None,
                 version: str | None = None, strict: bool = True, verify_shards: bool = True) -> None:
        super().__init__()
        if stats is None and not config.video_only:
            raise ValueError("ClipDataset needs action stats unless data.video_only=true")
        opened = open_rlds(path, name, version, strict=strict, verify_shards=verify_shards)
        self.path = opened.path  # a list of version directories for several datasets
        self.num_episodes = opened.num_episodes if config.max_episodes is None else \
            min(opened.num_episodes, config.max_episodes)
        self.language_dim = opened.language_dim()
        self.episode_rates = self._episode_rates(opened, config.weights)
        self.episode_imitated = self._episode_imitated(opened, config.imitate)
        self.strict = strict
        self.config = config
        self.stats = stats
        default_rank, default_world = _dist_rank_world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} not in [0, world_size={self.world_size})")
        self.epoch = 0
        self._resume: dict[int, tuple[int, int]] = {}
        self._rlds: RLDSDataset | ConcatRLDS | None = None  # opened lazily in each worker (tfds objects do not pickle)

    def _episode_rates(self, opened: RLDSDataset | ConcatRLDS, weights: list[float] | None) -> np.ndarray | None:
        """Per episode, the multiple of ``clips_per_episode`` it draws under ``weights`` (None: all 1)."""
        if weights is None:
            return None
        ranges = self._dataset_ranges(opened, "weights", len(weights))
        total = sum(w for w, (lo, hi) in zip(weights, ranges, strict=True) if hi > lo)  # datasets max_episodes reaches
        if total <= 0:
            raise ValueError(f"data.weights {weights}: no weighted dataset has episodes to read")
        rates = np.zeros(self.num_episodes)
        for w, (lo, hi) in zip(weights, ranges, strict=True):
            if hi > lo:
                rates[lo:hi] = (w / total) * self.num_episodes / (hi - lo)
        return rates

    def _episode_imitated(self, opened: RLDSDataset | ConcatRLDS, imitate: list[bool] | None) -> np.ndarray | None:
        """Per episode, whether its dataset is imitated (None: ``imitate`` unset)."""
        if imitate is None:
            return None
        out = np.zeros(self.num_episodes, bool)
        for flag, (lo, hi) in zip(imitate, self._dataset_ranges(opened, "imitate", len(imitate)), strict=True):
            out[lo:hi] = flag
        return out

    def _dataset_ranges(self, opened: RLDSDataset | ConcatRLDS, key: str, entries: int) -> list[tuple[int, int]]:
        """The global episode range [lo, hi) of each dataset of ``data.dir`` within the episodes read
        (``max_episodes`` may cut it short); ``data.<key>`` must have one entry per dataset."""
        offsets = getattr(opened, "offsets", [0])
        if entries != len(offsets):
            raise ValueError(f"data.{key} has {entries} entries but data.dir names {len(offsets)} dataset(s)")
        bounds = [min(o, self.num_episodes) for o in offsets] + [self.num_episodes]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rlds"] = None  # tfds builders do not pickle (DataLoader "spawn" workers); reopened lazily
        return state

    def set_epoch(self, epoch: int) -> None:
        """First epoch of the next ``iter()`` (like ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def set_resume(self, positions: dict[int, tuple[int, int]]) -> None:
        """Resume each shard at ``(epoch, clips already consumed in that epoch)``; see :class:`ClipLoader`."""
        self._resume = {int(k): (int(v[0]), int(v[1])) for k, v in positions.items()}

    def _shard(self) -> tuple[int, int]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard, num_shards = self._shard()
        # Read the resume point now (not lazily in the generator): it applies to this iterator only.
        epoch, skip = self._resume.pop(shard, (self.epoch, 0))
        return self._stream(shard, num_shards, epoch, skip)

    def _stream(self, shard: int, num_shards: int, epoch: int, skip: int) -> Iterator[dict[str, Any]]:
        if self._rlds is None:
            self._rlds = open_rlds(self.path, strict=self.strict, verify_shards=False)
        last = None if self.config.epochs is None else self.epoch + self.config.epochs
        while last is None or epoch < last:
            produced = 0
            for index, (ep, start) in enumerate(self._epoch_clips(epoch, shard, num_shards)):
                produced += 1
                if index < skip:
                    continue
                yield self._materialise(ep, start, (shard, epoch, index))
            if produced == 0:  # an empty shard would spin forever in endless mode
                return
            epoch, skip = epoch + 1, 0

    def _epoch_clips(self, epoch: int, shard: int, num_shards: int) -> Iterator[tuple[dict[str, Any], int]]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, epoch, shard])
        lo, hi = shard_range(self.num_episodes, shard, num_shards)
        blocks = [(b, min(b + cfg.block_episodes, hi)) for b in range(lo, hi, cfg.block_episodes)]
        if cfg.shuffle:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        buffer: list[tuple[dict[str, Any], int]] = []
        for raw in self._rlds.episodes_in(blocks, decode_images=False, check_actions=not cfg.video_only):
            ep = self._prepare(raw)
            starts = range(0, ep["length"] - cfg.clip_length + 1, cfg.stride)
            if cfg.clips_per_episode and len(starts):
                count = cfg.clips_per_episode
                if self.episode_rates is not None:  # stochastic rounding keeps the mixture's shares in expectation
                    expected = count * self.episode_rates[ep["index"]]
                    count = int(expected) + int(rng.random() < expected - int(expected))
                starts = sorted(rng.choice(starts, count).tolist())
            for start in starts:
                if not cfg.shuffle:
                    yield ep, start
                    continue
                buffer.append((ep, start))
                if len(buffer) >= cfg.shuffle_buffer:
                    j = int(rng.integers(len(buffer)))
                    buffer[j], buffer[-1] = buffer[-1], buffer[j]
                    yield buffer.pop()
        while buffer:
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()

    def _prepare(self, raw: dict[str, Any]) -> dict[str, Any]:
        steps = raw["steps"]
        images = steps["observation"]["image"]
        ep = {"index": int(raw["episode_index"]), "length": len(images), "images": list(images),
              "language": np.asarray(steps["observation"]["natural_language_embedding"][0], np.float32)}
        if not self.config.video_only:
            ep["actions"] = self.stats.normalize(episode_actions(steps["action"])).astype(np.float32)
        if self.config.instruction_tokens:
            from worldmodel.language import instruction_tokens

            text = steps["observation"]["natural_language_instruction"][0]
            ep["instruction"] = instruction_tokens(text, self.config.instruction_tokens)
        if self.config.state:
            if self.stats is None:
                raise ValueError("data.state needs dataset statistics (the robot-state moments)")
            ep["state"] = self.stats.normalize_state(episode_states(steps["observation"]))
        return ep

    def _materialise(self, ep: dict[str, Any], start: int, position: tuple[int, int, int]) -> dict[str, Any]:
        cfg = self.config
        k, f, length = cfg.context_frames, cfg.future_frames, ep["length"]
        try:
            frames = np.stack([decode_frame(jpeg, cfg.image_size) for jpeg in ep["images"][start:start + k + f]])
        except (OSError, ValueError) as exc:  # PIL: truncated or non-JPEG bytes
            raise DatasetError(f"{self._rlds.describe(ep['index'])}, steps {start}-{start + k + f - 1}: "
                               f"undecodable image ({exc})") from exc
        if cfg.random_shift:
            frames = random_shift(frames, cfg.random_shift, np.random.default_rng([cfg.seed, *position]))
        # numpy, not torch: tiny elementwise torch ops in workers pay for thread-pool wake-ups
        frames_t = torch.from_numpy(np.ascontiguousarray(pixels_to_model(frames)))  # (K+F, 3, H, W)
        steps = np.arange(start + k, start + k + f)
        sample = {
            "frames": frames_t,
            "language": torch.from_numpy(ep["language"].copy()),
            "progress": torch.from_numpy((steps / max(length - 1, 1)).astype(np.float32)),
            "clip_id": torch.tensor([ep["index"], start], dtype=torch.int64),
            "_position": torch.tensor(position, dtype=torch.int64),
        }
        if not cfg.video_only:
            first = start + k - 1
            sample["actions"] = torch.from_numpy(ep["actions"][first:first + f].copy())  # (F, 7)
        if self.episode_imitated is not None:
            sample["imitate"] = torch.tensor(bool(self.episode_imitated[ep["index"]]))
        if "instruction" in ep:
            sample["instruction"] = torch.from_numpy(ep["instruction"])  # (L, 384), shared read-only
        if "state" in ep:
            sample["state"] = torch.from_numpy(ep["state"][start:start + k].copy())  # (K, 8)
        return sample


class ClipLoader:
    """A ``DataLoader`` over a :class:`ClipDataset` that remembers the stream position for exact resumption.

    Each batch comes from one worker; its ``_position`` column tells how far that worker's shard has been
    consumed. ``state_dict()`` stores, per shard, (epoch, clips consumed); ``load_state_dict()`` before the
    next ``iter()`` makes every worker skip exactly those clips (without decoding their images), so no clip is
    repeated or skipped. With workers, the DataLoader restarts its round robin at worker 0, so batches of
    different workers may interleave differently than in an uninterrupted run; each worker's order is kept.

    Args:
        dataset: the clip dataset.
        batch_size: clips per batch.
        num_workers: DataLoader worker processes (0: in the main process).
        **loader_kwargs: forwarded to ``torch.utils.data.DataLoader`` (e.g. ``pin_memory``,
            ``multiprocessing_context``, ``prefetch_factor``).
    """

    def __init__(self, dataset: ClipDataset, batch_size: int, num_workers: int = 0,
                 **loader_kwargs: Any) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size,
                                                  num_workers=self.num_workers, **loader_kwargs)
        self._positions: dict[int, tuple[int, int]] = {}

    @property
    def num_shards(self) -> int:
        """world_size × max(num_workers, 1)."""
        return self.dataset.world_size * max(self.num_workers, 1)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.num_workers and self.dataset.config.instruction_tokens:
            # Load the instruction encoder here, before the workers fork: they inherit it instead of each loading
            # its own, and none imports transformers after the fork, which fails once wandb.init has hooked
            # imports (wandb's ForkedError in the worker).
            from worldmodel.language import _encoder

            _encoder()
        iterator = iter(self.loader)  # workers copy the dataset (and its resume points) here
        self.dataset.set_resume({})
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                plain = worker_error(exc)
                if plain is None:
                    raise
                raise plain from exc
            pos = batch.pop("_position")  # (B, 3): shard, epoch, index
            for shard, epoch, index in pos.tolist():
                if (epoch, index + 1) > self._positions.get(shard, (-1, 0)):
                    self._positions[shard] = (epoch, index + 1)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Stream position: ``{"num_shards", "seed", "positions": {shard: [epoch, consumed]}}``."""
        return {"num_shards": self.num_shards, "seed": self.dataset.config.seed,
                "positions": {str(k): list(v) for k, v in sorted(self._positions.items())}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (same world size, worker count and seed required)."""
        if int(state["num_shards"]) != self.num_shards:
            raise ValueError(f"loader state has {state['num_shards']} shards, this loader {self.num_shards} "
                             "(world_size × num_workers must match to resume exactly)")
        if int(state["seed"]) != self.dataset.config.seed:
            raise ValueError(f"loader state seed {state['seed']} != data.seed {self.dataset.config.seed}")
        self._positions = {int(k): (int(v[0]), int(v[1])) for k, v in state["positions"].items()}
        self.dataset.set_resume(self._positions)


def worker_error(exc: Exception) -> Exception | None:
    """The one-line error a DataLoader worker raised, from the main process's re-raise of it.

    ``DataLoader`` re-raises a worker's exception as the same type with the worker's whole traceback as the
    message; the user needs only its last line (the original message), as when reading in the main process.

    Returns:
        A new exception of the same type with the original message, or None if ``exc`` is not such a re-raise.
    """
    text = str(exc)
    if not (text.startswith("Caught ") and "DataLoader worker" in text.split("\n", 1)[0]):
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    match = re.match(rf"^[\w.]*\b{re.escape(type(exc).__name__)}: (.*)$", lines[-1])
    try:
        return type(exc)(match.group(1) if match else lines[-1])
    except Exception:  # an exception type that takes other arguments: keep torch's
        return None
