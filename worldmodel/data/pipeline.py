"""Wire a ``data`` config group (``configs/data/*.yaml``) into stats + a clip loader (trainers, scripts)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from worldmodel.data.clips import ClipConfig, ClipDataset, ClipLoader
from worldmodel.data.config import data_config, dataset_dirs
from worldmodel.data.reader import open_rlds
from worldmodel.data.stats import ActionStats, load_or_compute_stats

STATS_FILE = "action_stats.json"
_CLIP_FIELDS = tuple(f.name for f in fields(ClipConfig))


def clip_config(data_cfg: Any) -> ClipConfig:
    """Build a :class:`ClipConfig` from a ``data`` config (DictConfig or dict); missing keys keep defaults."""
    kwargs = {}
    for k in _CLIP_FIELDS:
        if k in data_cfg and (data_cfg[k] is not None or k in ("epochs", "max_episodes")):  # null: endless / all
            kwargs[k] = data_cfg[k]
    if "image_size" in kwargs:
        kwargs["image_size"] = tuple(int(v) for v in kwargs["image_size"])
    return ClipConfig(**kwargs)


def dataset_path(data_cfg: Any) -> Path | list[Path]:
    """``data.dir`` (a root holding ``name/version``, or the version directory itself); a list of paths when it
    names several datasets (read as one by :func:`~worldmodel.data.reader.open_rlds`), one path for a one-element
    list."""
    dirs = dataset_dirs(data_cfg.get("dir"))
    if not dirs:
        raise ValueError("data.dir is not set (the folder holding <name>/<version>/, "
                         "e.g. ~/tensorflow_datasets, or a list of such folders)")
    paths = [Path(d).expanduser() for d in dirs]
    return paths[0] if len(paths) == 1 else paths


def build_clip_loader(data_cfg: Any, batch_size: int, run_dir: str | Path | None = None,
                      stats: ActionStats | None = None, rank: int | None = None,
                      world_size: int | None = None, clip_cfg: ClipConfig | None = None,
                      **loader_kwargs: Any) -> tuple[ClipLoader, ActionStats | None]:
    """Open ``data.dir`` (one dataset or several read as one), get action stats (given, cached in ``run_dir``, or
    computed over all the episodes), build the loader.

    Args:
        data_cfg: the ``data`` group (dir, name, version, strict, clip fields, num_workers,
            stats_max_episodes).
        batch_size: clips per batch (per rank).
        run_dir: where ``action_stats.json`` is cached (None: not cached).
        stats: stats to use as-is (e.g. from a checkpoint being fine-tuned further).
        rank, world_size: DDP layout (default: from ``torch.distributed``).
        clip_cfg: the clip settings (default: :func:`clip_config` of ``data_cfg``).
        **loader_kwargs: forwarded to ``DataLoader``.

    Returns:
        (loader, stats); stats is None in video-only mode.
    """
    cfg = clip_config(data_cfg) if clip_cfg is None else clip_cfg
    path, name, version = dataset_path(data_cfg), data_cfg.get("name"), data_cfg.get("version")
    strict = data_config(data_cfg).strict
    stats_opened = None
    if stats is None and not cfg.video_only:
        dataset = stats_opened = open_rlds(path, name, version, strict=strict)
        cache = Path(run_dir) / STATS_FILE if run_dir is not None else None
        stats = load_or_compute_stats(dataset, cache, max_episodes=data_cfg.get("stats_max_episodes"))
    if cfg.state and (stats is None or not stats.has_state):
        raise ValueError("state tokens need robot-state statistics; the given statistics (e.g. from an older "
                         "checkpoint) have none: set model.state_dim=0 or train from a fresh run")
    clips = ClipDataset(path, cfg, stats, rank=rank, world_size=world_size, name=name, version=version,
                        strict=strict, verify_shards=stats_opened is None)
    loader = ClipLoader(clips, batch_size, data_config(data_cfg).num_workers, **loader_kwargs)
    return loader, stats
