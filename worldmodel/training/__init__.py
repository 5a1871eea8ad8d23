"""Training: one loop for pretraining and fine-tuning (torchrun DDP / FSDP2, EMA, exact resume, wandb).

Public API: :class:`TrainConfig`, :class:`Trainer`, :func:`load_checkpoint` (model + config + action stats
from a checkpoint, without the dataset), and the checkpoint helpers.
"""

from worldmodel.training.checkpoint import (
    LoadedCheckpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_meta,
    resolve_checkpoint,
)
from worldmodel.training.config import TrainConfig
from worldmodel.training.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "LoadedCheckpoint",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_meta",
    "resolve_checkpoint",
]
