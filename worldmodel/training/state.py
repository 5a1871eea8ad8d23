"""Pieces of training state: the RNG streams, RNG snapshots, weight initialisation from a pretraining
checkpoint, optimiser and schedule, and :class:`TrainState` (what the trainer's builders return)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worldmodel.integrity import load_tensors, read_json
from worldmodel.training.checkpoint import META, resolve_checkpoint
from worldmodel.training.config import TrainConfig

# Layers a video-only (pretraining) run never trains: a fine-tuning run initialises them afresh. Video clips carry
# no actions, instruction tokens or robot state (a pretraining corpus may have neither).
ACTION_PREFIXES = ("action_embed.", "action_head.")
INSTRUCTION_PREFIXES = ("instruction_embed.", "instruction_pos", "instruction_film.", "instruction_cond.")
STATE_PREFIXES = ("state_embed.",)
CONDITION_PREFIXES = (*INSTRUCTION_PREFIXES, *STATE_PREFIXES)
# Optional conditioning inputs (a ModelConfig field, 0 = off) and the layers each adds. Initialising from a
# checkpoint built without one starts that input's layers fresh (e.g. keypoints added to a trained reference);
# the other way round (``init_leave_out=true``) the checkpoint's layers of it are left out.
OPTIONAL_INPUTS = {"instruction_tokens": (*INSTRUCTION_PREFIXES, "keypoint_task.slot.", "keypoint_task.instruction."),
                   "state_dim": STATE_PREFIXES,
                   "keypoints": ("keypoint_net.", "keypoint_embed."), "keypoint_film": ("keypoint_cond.",),
                   "keypoint_head": ("keypoint_head.",),
                   "keypoint_language": ("keypoint_task.", "keypoint_net.film.", "keypoint_head_task.")}
# Layers whose shape is the action chunk (future_frames × action_dim): initialising from a checkpoint with another
# chunk length F starts them fresh (the keypoint head's output layer; the transformer's action tokens are per step).
CHUNK_PREFIXES = ("keypoint_head.4.",)


def untrained_prefixes(model: nn.Module) -> list[str]:
    """The prefixes of :data:`ACTION_PREFIXES` and :data:`CONDITION_PREFIXES` that name layers of ``model``."""
    names = [n for n, _ in model.named_parameters()]
    return [p for p in (*ACTION_PREFIXES, *CONDITION_PREFIXES) if any(n.startswith(p) for n in names)]

# Seeds of the training RNG streams. Each run seed owns the block [seed·SEED_STRIDE, (seed + 1)·SEED_STRIDE);
# the stride is a large prime, so neighbouring run seeds never share a stream. Inside the block each stream has
# an offset, and the per-rank streams step by RANK_STRIDE (> every offset) so that no two ranks or streams
# collide. Rank 0's seeds are the ones every earlier single-process run used.
SEED_STRIDE = 1_000_003
RANK_STRIDE = 8
STREAM_OFFSETS = {
    "train": 1,  # per rank, on the device: flow times, noise, Self-Flow masks
    "verbs": 7,  # per rank, on the CPU: the verb each example trains (policy / dynamics / inverse)
    "batch_kind": 5,  # shared by all ranks, on the CPU: video or action micro-batch (FSDP2 needs the same layout)
}


@dataclass
class Streams:
    """The training RNG streams (see :data:`STREAM_OFFSETS`); saved and restored with every checkpoint."""

    train: torch.Generator
    verbs: torch.Generator
    batch_kind: torch.Generator

    @classmethod
    def seeded(cls, seed: int, rank: int, device: torch.device) -> Streams:
        base, mine = seed * SEED_STRIDE, rank * RANK_STRIDE
        return cls(train=torch.Generator(device=device).manual_seed(base + STREAM_OFFSETS["train"] + mine),
                   verbs=torch.Generator().manual_seed(base + STREAM_OFFSETS["verbs"] + mine),
                   batch_kind=torch.Generator().manual_seed(base + STREAM_OFFSETS["batch_kind"]))

    def by_name(self) -> dict[str, torch.Generator]:
        """The generators under the names checkpoints store them by (``train``, ``cpu``, ``kind``)."""
        return {"train": self.train, "cpu": self.verbs, "kind": self.batch_kind}


@dataclass
class TrainState:
    """What the loop trains and updates, built once per run by the trainer.

    Attributes:
        model: the network (sharded under FSDP2).
        projector: the Self-Flow projector.
        head: the progress head (fine-tuning with ``train.progress_weight > 0``), else None.
        ema: the EMA copy (Self-Flow teacher, the weights to evaluate).
        student: model + projector (+ head) as one module (what DDP wraps).
        wrapped: ``student`` wrapped for DDP, or ``student`` itself (single process, FSDP2).
        params: the trained parameters (gradient clipping).
        optimizer, scheduler: AdamW and the LR schedule.
        streams: the RNG streams.
        sharded: FSDP2 is on.
        step: optimiser steps done.
    """

    model: nn.Module
    projector: nn.Module
    head: nn.Module | None
    ema: Any
    student: nn.Module
    wrapped: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    streams: Streams
    sharded: bool
    step: int = 0


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Snapshot of python, numpy, torch (CPU and CUDA) and the given generators, in weights-only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in generators.items()},
    }


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Restore a :func:`rng_state` snapshot."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, gen in generators.items():
        gen.set_state(state["generators"][name])


def freeze_action_layers(model: nn.Module) -> None:
    """Exclude the action embedding and head from training (video pretraining never uses them)."""
    for name, p in model.named_parameters():
        if name.startswith((*ACTION_PREFIXES, *CONDITION_PREFIXES)):
            p.requires_grad_(False)


def _check_and_filter(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], skip: tuple[str, ...],
                      where: str, hint: str) -> dict[str, torch.Tensor]:
    for name, mine in own.items():  # in the model's order, so the first mismatch reported is the earliest layer
        if name in state and not name.startswith(skip) and tuple(state[name].shape) != tuple(mine.shape):
            raise ValueError(f"{where}: parameter {name!r} has shape {list(state[name].shape)} in the checkpoint "
                             f"but {list(mine.shape)} in this model ({hint})")
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ValueError(f"{where}: parameter {unknown[0]!r} of the checkpoint does not exist in this model "
                         f"({len(unknown)} such; {hint})")
    missing = [k for k in own if k not in state and not k.startswith(skip)]
    if missing:
        raise ValueError(f"{where}: parameter {missing[0]!r} of this model is missing from the checkpoint "
                         f"({len(missing)} missing; {hint})")
    return {k: v for k, v in state.items() if not k.startswith(skip)}


def init_from_checkpoint(model: nn.Module, projector: nn.Module, path: str | Path,
                         leave_out: bool = False) -> dict[str, Any]:
    """Initialise a model for fine-tuning from a (pretraining) checkpoint's EMA weights.

    Every parameter must exist with the same shape on both sides, except layers the checkpoint never trained
    (its ``untrained`` list: the action embedding and head of a video-only run), the layers of an optional
    input (:data:`OPTIONAL_INPUTS`) that the checkpoint's model was built without, and, when the checkpoint's
    chunk length ``future_frames`` differs from the model's, the chunk-sized layers (:data:`CHUNK_PREFIXES`);
    all keep their fresh initialisation here. The other way round, the checkpoint's layers of an optional input
    that this model is built without are refused, unless ``leave_out`` (an ablation that switches one off): then
    they are left out (``dropped``).

    Args:
        model: the freshly built network.
        projector: the Self-Flow projector (loaded too).
        path: a checkpoint or run directory.
        leave_out: leave out the checkpoint's layers of optional inputs this model is built without
            (``init_leave_out=true``) instead of refusing them.

    Returns:
        ``{"checkpoint", "step", "loaded", "fresh", "dropped"}`` (parameter counts / names).

    Raises:
        ValueError: naming the first parameter whose shape differs or that exists on one side only.
        FileNotFoundError: no checkpoint at ``path``.
    """
    ckpt = resolve_checkpoint(path)
    meta = read_json(ckpt / META)
    trained_with = meta.get("model", {})
    weights = load_tensors(ckpt, "ema.safetensors")
    own = model.state_dict()
    # the layers of an optional input this model is built without: the checkpoint's weights of them are not used
    removed = tuple(p for prefixes in OPTIONAL_INPUTS.values() for p in prefixes
                    if any(k.startswith(p) for k in weights) and not any(k.startswith(p) for k in own))
    dropped = sorted(k for k in weights if k.startswith(removed))  # an empty tuple matches nothing
    if dropped and not leave_out:
        raise ValueError(f"init={ckpt}: parameter {dropped[0]!r} of the checkpoint does not exist in this model "
                         f"({len(dropped)} such, of inputs this model is built without; init_leave_out=true leaves "
                         f"them out, or build the model with the checkpoint's inputs)")
    weights = {k: v for k, v in weights.items() if not k.startswith(removed)}
    # the layers of an optional input the checkpoint's model was built without: its weights lack them
    added = [p for prefixes in OPTIONAL_INPUTS.values() for p in prefixes if not any(k.startswith(p) for k in weights)]
    chunk = getattr(getattr(model, "cfg", None), "future_frames", None)
    resized = CHUNK_PREFIXES if chunk is not None and trained_with.get("future_frames", chunk) != chunk else ()
    skip = (*meta.get("untrained", []), *added, *resized)
    hint = (f"the checkpoint was trained with model={trained_with.get('name')} hidden={trained_with.get('hidden')} "
            f"depth={trained_with.get('depth')} patch={trained_with.get('patch')}; fine-tune with the same model")
    where = f"init={ckpt}"
    state = _check_and_filter(own, weights, skip, where, hint)
    model.load_state_dict(state, strict=False)
    proj = _check_and_filter(projector.state_dict(), load_tensors(ckpt, "projector.safetensors"), (),
                             where + " (projector)", hint)
    projector.load_state_dict(proj, strict=True)
    fresh = sorted(k for k in own if k not in state)
    return {"checkpoint": str(ckpt), "step": int(meta["step"]), "loaded": len(state), "fresh": fresh,
            "dropped": dropped}


def build_optimizer(params: Iterable[nn.Parameter], tc: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases and norm scales are not decayed)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, tc: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then constant or cosine (:meth:`TrainConfig.lr_factor`)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: tc.lr_factor(step))
