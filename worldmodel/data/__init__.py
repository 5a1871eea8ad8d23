"""RT-1 RLDS data: schema, sim→RLDS writer, tfds reader, clip dataset and action statistics.

See docs/architecture.md, "Data".
"""

from worldmodel.data.clips import ClipConfig, ClipDataset, ClipLoader, decode_frame, shard_range
from worldmodel.data.pipeline import build_clip_loader, clip_config
from worldmodel.data.reader import (
    ConcatRLDS,
    DatasetError,
    RLDSDataset,
    episode_actions,
    open_rlds,
    resolve_dataset_dir,
    verify_tfrecord_shard,
)
from worldmodel.data.schema import DATASET_NAME, VERSION, diff_features, features
from worldmodel.data.stats import ActionStats, compute_action_stats, load_or_compute_stats
from worldmodel.data.writer import Episode, dataset_dir, episode_example, write_dataset

__all__ = [
    "DATASET_NAME", "VERSION", "ActionStats", "ClipConfig", "ClipDataset", "ClipLoader", "ConcatRLDS",
    "DatasetError", "Episode", "RLDSDataset", "build_clip_loader", "clip_config", "compute_action_stats",
    "dataset_dir", "decode_frame", "diff_features", "episode_actions", "episode_example", "features",
    "load_or_compute_stats", "open_rlds", "resolve_dataset_dir", "shard_range", "verify_tfrecord_shard",
    "write_dataset",
]
