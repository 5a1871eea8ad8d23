"""Training settings (the ``train`` group), validated on construction.

The defaults are the GPU-scale run (``train=default``); ``configs/train/demo.yaml`` and ``smoke.yaml`` override a
few of them for the CPU demo and the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from worldmodel.config_utils import from_mapping

SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
STRATEGIES = ("ddp", "fsdp2")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the ``train`` config group).

    Attributes:
        steps: optimiser steps of the whole run (a resumed run continues to this step).
        batch_size: clips per micro-batch *per rank*; the global batch is ``batch_size·grad_accum·world_size``.
        grad_accum: micro-batches accumulated per optimiser step.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay, applied to matrices only (not biases / norms).
        beta1, beta2: AdamW betas.
        warmup_steps: linear warm-up from 0 to ``lr``.
        schedule: ``constant`` after warm-up, or ``cosine`` decay to ``min_lr_ratio·lr`` at ``steps``.
        min_lr_ratio: floor of the cosine schedule as a fraction of ``lr``.
        grad_clip: max global gradient norm (0 disables clipping).
        seed: seeds model init, the training RNG (times, noise, masks, verbs) and python/numpy.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
        compile: wrap the network in ``torch.compile``.
        activation_checkpointing: recompute each block in the backward pass (less memory, ~30 % more time).
        strategy: ``ddp`` or ``fsdp2`` (``fully_shard`` per block; for L/XL) when run under torchrun.
        log_every: log losses, LR, grad norm and throughput every N steps.
        sample_every: write a sample video (real | generated future) every N steps (0: never).
        sample_steps: sampler steps for those videos.
        ckpt_every: write a checkpoint every N steps (the last step is always saved).
        keep_last: checkpoints kept in ``run_dir/checkpoints`` (older ones are deleted).
        num_threads: torch CPU threads per rank (0: torch's default, split between local ranks).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        progress_weight: weight of the progress-head loss added to the objective when fine-tuning (the head
            reads the EMA model's features of the clean clip; 0: no head is trained or saved). Ignored in
            pretraining.
    """

    steps: int = 400_000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 1000
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    precision: str = "auto"
    compile: bool = False
    activation_checkpointing: bool = False
    strategy: str = "ddp"
    log_every: int = 50
    sample_every: int = 5000
    sample_steps: int = 8
    ckpt_every: int = 5000
    keep_last: int = 3
    num_threads: int = 0
    device: str = "auto"
    progress_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every", "sample_steps", "ckpt_every", "keep_last"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "sample_every", "num_threads", "seed"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"train.weight_decay and train.grad_clip must be >= 0, got "
                             f"{self.weight_decay}, {self.grad_clip}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")
        if not (math.isfinite(self.progress_weight) and self.progress_weight >= 0):
            raise ValueError(f"train.progress_weight must be a finite number >= 0, got {self.progress_weight}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        for name, allowed in (("schedule", SCHEDULES), ("precision", PRECISIONS), ("strategy", STRATEGIES),
                              ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a plain mapping (e.g. the ``train`` node); unknown keys raise ValueError."""
        return from_mapping(cls, values, "train")

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` for optimiser step ``step`` (0-based: the factor used by the step-th update)."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.schedule == "constant":
            return 1.0
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
