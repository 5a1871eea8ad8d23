"""The training loop (one for pretraining and fine-tuning; single process, DDP or FSDP2 under torchrun)."""

from __future__ import annotations

import contextlib
import json
import math
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from worldmodel.data.clips import ClipLoader
from worldmodel.data.config import data_config
from worldmodel.data.pipeline import STATS_FILE, build_clip_loader, clip_config, dataset_path
from worldmodel.data.reader import open_rlds
from worldmodel.data.stats import ActionStats, load_or_compute_stats
from worldmodel.integrity import load_pickle_free, load_tensors, read_json
from worldmodel.models import Condition, ModelConfig, Projector, VerbSampler, build_model, demonstration_verbs
from worldmodel.models.progress import ProgressHead, ProgressHeadConfig
from worldmodel.objectives import EMA, FlowBatch, LossOutput, ObjectiveConfig, training_loss
from worldmodel.objectives.progress import ProgressLossOutput, progress_loss
from worldmodel.training import distributed as D
from worldmodel.training import state as S
from worldmodel.training.checkpoint import (
    PROGRESS_FILE,
    CheckpointContents,
    ResumeChoice,
    prune_checkpoints,
    resolve_checkpoint,
    select_resume,
    write_checkpoint,
)
from worldmodel.training.config import TrainConfig
from worldmodel.training.metrics import PROGRESS_TERMS, TERMS, MetricsWindow, StepMetrics
from worldmodel.training.monitor import Monitor
from worldmodel.training.samples import generate_sample, validation_clip, write_sample
from worldmodel.validation import check_language_dim, check_writable_dir

MODES = ("pretrain", "finetune")

# (frames (B, K+F, 3, H, W) clean in [-1, 1], the undropped Condition, progress targets (B, F))
ProgressInputs = tuple[torch.Tensor, Condition, torch.Tensor, torch.Tensor | None]  # frames, language, target, weight


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN/inf; the message names the step and the last good checkpoint."""


@dataclass
class TrainResult:
    """How a run ended.

    Attributes:
        step: optimiser steps done.
        checkpoint: the last checkpoint written (None if none).
        signal: the signal number that stopped the run early (None when it ran to ``train.steps``).
    """

    step: int
    checkpoint: Path | None
    signal: int | None = None


class _Student(nn.Module):
    """Model + projector (+ progress head) as one module, so that DDP sees every trained parameter in a single
    forward."""

    def __init__(self, model: nn.Module, projector: nn.Module, teacher: nn.Module, objective: ObjectiveConfig,
                 progress_head: ProgressHead | None = None):
        super().__init__()
        self.model, self.projector, self.objective = model, projector, objective
        self.progress_head = progress_head
        self._teacher = [teacher]  # a list keeps the EMA copy out of the module tree (not trained, not synced)

    def forward(self, batch: FlowBatch, generator: torch.Generator,
                progress: ProgressInputs | None = None) -> tuple[LossOutput, ProgressLossOutput | None]:
        """The flow objective and, given ``progress`` inputs and a head, the progress loss (the head reads the
        EMA model's features of the clean clip under ``no_grad``: only the head learns from it)."""
        out = training_loss(self.model, batch, self.objective, self._teacher[0], self.projector, generator)
        if progress is None or self.progress_head is None:
            return out, None
        frames, lang, target, weight = progress
        return out, progress_loss(self._teacher[0], self.progress_head, frames, lang, target, weight=weight)


class Trainer:
    """Builds everything from a composed config and runs the loop.

    ``run`` opens the run (resume point, action statistics, data), builds the :class:`~worldmodel.training.state.
    TrainState` (:meth:`_build_state`), restores a checkpoint into it when resuming, then repeats
    :meth:`train_step` and logs :class:`MetricsWindow` rows until ``train.steps``.

    Args:
        cfg: the composed config (``model``, ``objective``, ``data``, ``train``, ``logger``, ``run_dir``,
            ``resume``).
        mode: ``pretrain`` (``video`` verb, actions ignored) or ``finetune`` (the verb mix).
        init: checkpoint to initialise the weights from (fine-tuning).
    """

    def __init__(self, cfg: DictConfig, mode: str, init: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.cfg, self.mode, self.init = cfg, mode, init
        self.tc = TrainConfig.from_dict(OmegaConf.to_container(cfg.train, resolve=True))
        obj = OmegaConf.to_container(cfg.objective, resolve=True)
        probs = dict(obj.pop("verb_probs"))
        total = sum(float(v) for v in probs.values())
        self.p_video = float(probs.pop("video", 0.0)) / max(total, 1e-12)
        if mode == "finetune" and not 0.0 <= self.p_video < 1.0:
            raise ValueError(f"objective.verb_probs.video must leave room for action verbs, got {self.p_video}")
        self.objective = ObjectiveConfig.from_dict({**obj, "verb_probs": probs})
        self.verbs = VerbSampler(probs)
        self.clip_cfg = clip_config(cfg.data)
        if mode == "pretrain" and not self.clip_cfg.video_only:
            raise ValueError("pretraining reads frames only: data.video_only must be true")
        if mode == "finetune" and self.clip_cfg.video_only:
            raise ValueError("fine-tuning needs actions: data.video_only must be false")
        self.run_dir = Path(str(cfg.run_dir)).expanduser()
        # pretraining never trains the action layers: a fine-tuning run's init leaves them fresh
        self.untrained = list(S.ACTION_PREFIXES) if mode == "pretrain" else []
        self.sample_verb = "video" if self.clip_cfg.video_only else "dynamics"
        self._signal: int | None = None
        # Set by run(), in this order:
        self.info: D.DistInfo | None = None
        self.resume_from: Path | None = None
        self._skipped: list[Path] = []  # newer checkpoints that failed verification, pruned once the run starts
        self.stats: ActionStats | None = None
        self.loader: ClipLoader | None = None
        self.model_cfg: ModelConfig | None = None
        self.state: S.TrainState | None = None
        self.autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
        self.val_clip: dict[str, torch.Tensor] | None = None

    # ----------------------------------------------------------------------------------------------- setup
    def _resume_point(self) -> ResumeChoice:
        check_writable_dir(self.run_dir, "run_dir")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return select_resume(self.run_dir, self.cfg.get("resume"))

    def _on_main(self, fn: Any) -> Any:
        """Run ``fn`` on rank 0 and share its result (or its error) with every rank."""
        result, error = None, None
        if self.info.is_main:
            try:
                result = fn()
            except (ValueError, FileNotFoundError, FileExistsError) as exc:
                error = exc
        result, error = D.broadcast_object((result, error), self.info)
        if error is not None:
            raise error
        return result

    def _stats(self, resume_meta: dict[str, Any] | None) -> ActionStats | None:
        if self.clip_cfg.video_only:
            return None
        if resume_meta is not None and resume_meta.get("action_stats"):
            return ActionStats.from_dict(resume_meta["action_stats"])
        data = data_config(self.cfg.data)

        def compute() -> dict[str, Any]:
            dataset = open_rlds(dataset_path(self.cfg.data), data.name, data.version, strict=data.strict)
            return load_or_compute_stats(dataset, self.run_dir / STATS_FILE,
                                         max_episodes=data.stats_max_episodes).to_dict()

        return ActionStats.from_dict(self._on_main(compute))

    def _open_run(self) -> dict[str, Any] | None:
        """Run directory, resume point, ``config.yaml``, action statistics, data loader and model config;
        returns the resumed checkpoint's ``meta.json`` (None for a new run)."""
        info = self.info
        choice: ResumeChoice = self._on_main(self._resume_point)
        self.resume_from, self._skipped = choice.path, choice.skipped
        meta = read_json(self.resume_from / "meta.json") if self.resume_from else None
        self.stats = self._stats(meta)
        model_dict = OmegaConf.to_container(self.cfg.model, resolve=True)
        model_dict["checkpointing"] = bool(model_dict.get("checkpointing")) or self.tc.activation_checkpointing
        self.model_cfg = ModelConfig.from_dict(model_dict)
        if not self.model_cfg.future_frame_tokens and (self.p_video > 0 or self.verbs.verbs != ["policy"]):
            raise ValueError("model.future_frame_tokens=false (an action-only model) trains the policy verb only: "
                             "set objective.verb_probs.policy=1 and dynamics, inverse and video to 0")
        if self.objective.keypoint_action_weight > 0 and not self.model_cfg.keypoint_head:
            raise ValueError("objective.keypoint_action_weight > 0 needs model.keypoint_head=true")
        if not self.clip_cfg.video_only:  # the model decides which conditioning the clips carry
            self.clip_cfg = replace(self.clip_cfg, instruction_tokens=self.model_cfg.instruction_tokens,
                                    state=self.model_cfg.state_dim > 0)
        self.loader, _ = build_clip_loader(self.cfg.data, self.tc.batch_size, self.run_dir, stats=self.stats,
                                           clip_cfg=self.clip_cfg, pin_memory=info.device.type == "cuda")
        check_language_dim(self.loader.dataset.language_dim, self.model_cfg.lang_dim, f"data.dir={self.cfg.data.dir}")
        if meta is not None and ModelConfig.from_dict({**meta["model"], "checkpointing": False}) != \
                replace(self.model_cfg, checkpointing=False):  # through the dataclass: older metas lack new fields
            raise ValueError(f"resume={self.resume_from}: model config differs from the checkpoint's "
                             f"({meta['model']}); resume with the same model settings")
        return meta

    def _build_state(self, meta: dict[str, Any] | None) -> S.TrainState:
        """Model, projector, progress head, EMA, (DDP / FSDP2) wrapping, optimiser, schedule and RNG streams."""
        tc, info = self.tc, self.info
        torch.manual_seed(tc.seed)
        model, projector = build_model(self.model_cfg), Projector(self.model_cfg.hidden)
        if self.init and self.resume_from is None:
            report = S.init_from_checkpoint(model, projector, self.init, bool(self.cfg.get("init_leave_out", False)))
            if info.is_main:
                print(f"init: {report['loaded']} tensors from {report['checkpoint']} (step {report['step']}); "
                      f"freshly initialised: {', '.join(report['fresh']) or 'none'}"
                      + (f"; left out (inputs this model is built without): {len(report['dropped'])} tensors"
                         if report["dropped"] else ""), flush=True)
        if self.mode == "pretrain":
            S.freeze_action_layers(model)
        model, projector = model.to(info.device), projector.to(info.device)
        head = self._progress_head(model, meta)
        ema = EMA(model, self.objective.ema_decay, self.objective.ema_warmup)
        sharded = info.distributed and tc.strategy == "fsdp2"
        if sharded:
            D.shard_fsdp2(model, model.blocks)
            D.shard_fsdp2(projector, nn.ModuleList())
            D.shard_fsdp2(ema.model, ema.model.blocks)
            if head is not None:
                D.shard_fsdp2(head, nn.ModuleList())
        net = torch.compile(model) if tc.compile else model
        student = _Student(net, projector, ema.model, self.objective, head)
        # video batches leave the action layers and the progress head idle
        find_unused = self.mode == "finetune" and self.p_video > 0
        wrapped = student if sharded else D.wrap_ddp(student, info, find_unused)
        params = [*model.parameters(), *projector.parameters(), *(head.parameters() if head is not None else ())]
        params = [p for p in params if p.requires_grad]
        optimizer = S.build_optimizer(params, tc, fused=info.device.type == "cuda")
        return S.TrainState(model=model, projector=projector, head=head, ema=ema, student=student, wrapped=wrapped,
                            params=params, optimizer=optimizer, scheduler=S.build_scheduler(optimizer, tc),
                            streams=S.Streams.seeded(tc.seed, info.rank, info.device), sharded=sharded)

    def _progress_head(self, model: nn.Module, resume_meta: dict[str, Any] | None) -> ProgressHead | None:
        """The progress head to train (fine-tuning with ``train.progress_weight > 0``; else None), on the device.

        Built with :meth:`ProgressHeadConfig.for_model` (or the resumed checkpoint's shape; its weights are loaded
        in :meth:`_load`); with ``init=`` a checkpoint that has a head of the same shape initialises it.
        """
        if self.mode != "finetune" or self.tc.progress_weight == 0:
            if resume_meta is not None and resume_meta.get("progress_head"):
                raise ValueError(f"resume={self.resume_from}: the checkpoint trains a progress head; resume it "
                                 "with train.progress_weight > 0")
            return None
        if resume_meta is not None:
            if not resume_meta.get("progress_head"):
                raise ValueError(f"resume={self.resume_from}: the checkpoint has no progress head but "
                                 f"train.progress_weight={self.tc.progress_weight}; resume with "
                                 "train.progress_weight=0, or start a new run with init=<that checkpoint>")
            config = ProgressHeadConfig(**resume_meta["progress_head"])
        else:
            config = ProgressHeadConfig.for_model(model)
        head = ProgressHead(config)
        if self.init and resume_meta is None:
            ckpt = resolve_checkpoint(self.init)
            init_meta = read_json(ckpt / "meta.json")
            if init_meta.get("progress_head") == config.to_dict() and (ckpt / PROGRESS_FILE).is_file():
                head.load_state_dict(load_tensors(ckpt, PROGRESS_FILE), strict=True)
                if self.info.is_main:
                    print(f"init: progress head from {ckpt}", flush=True)
        return head.to(self.info.device)

    def _bf16(self) -> bool:
        if self.tc.precision == "auto":
            return self.info.device.type == "cuda"
        return self.tc.precision == "bf16"

    def _load(self, ckpt: Path) -> None:
        st = self.state
        D.load_full_state_dict(st.model, load_tensors(ckpt, "model.safetensors"), st.sharded)
        D.load_full_state_dict(st.ema.model, load_tensors(ckpt, "ema.safetensors"), st.sharded)
        D.load_full_state_dict(st.projector, load_tensors(ckpt, "projector.safetensors"), st.sharded)
        if st.head is not None:
            if not (ckpt / PROGRESS_FILE).is_file():
                raise ValueError(f"resume={ckpt}: meta.json names a progress head but {PROGRESS_FILE} is missing")
            D.load_full_state_dict(st.head, load_tensors(ckpt, PROGRESS_FILE), st.sharded)
        optim = load_pickle_free(ckpt, "optimizer.pt")  # weights_only=True: never runs pickled code
        D.load_optimizer_state(st.student, st.optimizer, optim, st.sharded)
        state = load_pickle_free(ckpt, "trainer_state.pt")
        if len(state["ranks"]) != self.info.world_size:
            raise ValueError(f"resume={ckpt}: written by {len(state['ranks'])} ranks, this run has "
                             f"{self.info.world_size}; exact resume needs the same number of ranks")
        st.scheduler.load_state_dict(state["scheduler"])
        st.ema.num_updates = int(state["ema_updates"])
        st.step = int(state["step"])
        mine = state["ranks"][self.info.rank]
        self.loader.load_state_dict(mine["data"])
        S.set_rng_state(mine["rng"], st.streams.by_name())

    # ------------------------------------------------------------------------------------------ checkpoints
    def _save(self) -> Path | None:
        st = self.state
        rank_state = {"rng": S.rng_state(st.streams.by_name()), "data": self.loader.state_dict()}
        ranks = D.gather_objects(rank_state, self.info)
        model = D.full_state_dict(st.model, st.sharded)
        ema = D.full_state_dict(st.ema.model, st.sharded)
        projector = D.full_state_dict(st.projector, st.sharded)
        head = D.full_state_dict(st.head, st.sharded) if st.head is not None else None
        optim = D.optimizer_state(st.student, st.optimizer, st.sharded)
        path = None
        if self.info.is_main:
            meta = {"mode": self.mode, "model": {**asdict(self.model_cfg), "checkpointing": False},
                    "objective": asdict(self.objective), "p_video": self.p_video,
                    "action_stats": self.stats.to_dict() if self.stats else None, "untrained": self.untrained,
                    "world_size": self.info.world_size, "data": {"name": self.cfg.data.get("name"),
                                                                 "dir": str(self.cfg.data.get("dir"))}}
            if st.head is not None:
                meta["progress_head"] = st.head.config.to_dict()
            state = {"step": st.step, "scheduler": st.scheduler.state_dict(),
                     "ema_updates": st.ema.num_updates, "ranks": ranks}
            contents = CheckpointContents(st.step, model, ema, projector, optim, state, meta,
                                          OmegaConf.to_yaml(self.cfg, resolve=True), head)
            path = write_checkpoint(self.run_dir, contents, self.tc.keep_last)
        D.barrier(self.info)
        return path

    # ---------------------------------------------------------------------------------------------- step
    def _flow_batch(self, batch: dict[str, torch.Tensor]) -> tuple[FlowBatch, ProgressInputs | None]:
        """The micro-batch's flow batch and, when it carries actions and a head is trained, the progress
        inputs (the clean clip, its language and ``progress`` targets)."""
        dev, streams = self.info.device, self.state.streams
        frames = batch["frames"].to(dev, non_blocking=True)  # (B, K+F, 3, H, W)
        actions = batch.get("actions")
        # A video micro-batch has no action tokens (a layout is per batch, not per sample). The coin is shared by
        # all ranks (same seed): FSDP2 must reduce the same parameters (the action layers get no grad) everywhere.
        if actions is not None and self.p_video > 0 and \
                float(torch.rand((), generator=streams.batch_kind)) < self.p_video:
            actions = None
        verbs = self.verbs.sample(frames.shape[0], actions is not None, streams.verbs)
        imitated = batch.get("imitate")  # (B,) bool with data.imitate: False for clips of non-demonstration data
        verbs = demonstration_verbs(verbs, imitated)  # their actions are not the task's: never the policy's targets
        actions = None if actions is None else actions.to(dev, non_blocking=True)
        full = lang = Condition(batch["language"], batch.get("instruction"), batch.get("state")).to(dev)
        if actions is not None and self.objective.language_dropout > 0:  # for classifier-free guidance
            drop = torch.rand(frames.shape[0], generator=streams.verbs) < self.objective.language_dropout
            lang = lang.drop_language(drop)
        if actions is not None and self.objective.state_dropout > 0:  # act from the image, not the pose's heading
            lang = lang.drop_state(torch.rand(frames.shape[0], generator=streams.verbs) < self.objective.state_dropout)
        fb = FlowBatch.from_clip(frames, actions, lang, verbs, self.clip_cfg.context_frames, self.model_cfg.patch,
                                 self.model_cfg.future_frame_tokens)
        progress = None
        if self.state.head is not None and actions is not None:
            # step / length is progress in demonstrations only: other clips weigh 0 (they still run, so that every
            # rank's head gets a gradient)
            weight = None if imitated is None else imitated.to(dev, torch.float32)
            progress = (frames, full, batch["progress"].to(dev, non_blocking=True), weight)  # the scorer sees the task
        return fb, progress

    def _no_sync(self, skip: bool) -> contextlib.AbstractContextManager:
        st = self.state
        if skip and isinstance(st.wrapped, nn.parallel.DistributedDataParallel):
            return st.wrapped.no_sync()
        if st.sharded:
            for m in (st.model, st.projector, st.head):
                if m is not None:
                    m.set_requires_gradient_sync(not skip)
        return contextlib.nullcontext()

    def train_step(self, data: Iterator[dict[str, torch.Tensor]], last_ckpt: Path | None) -> StepMetrics:
        """One optimiser step over ``train.grad_accum`` micro-batches: forward, backward, clip, AdamW, EMA.

        Every rank agrees on two flags after the backward pass (one collective): a non-finite loss or gradient
        norm anywhere, and a stop signal anywhere.

        Raises:
            NonFiniteLossError: nothing is updated for this step; the message names ``last_ckpt``.
        """
        tc, st = self.tc, self.state
        lr = st.scheduler.get_last_lr()[0]
        terms = torch.zeros(len(TERMS), device=self.info.device)
        p_terms = torch.zeros(len(PROGRESS_TERMS), device=self.info.device)
        p_micro = samples = tokens = 0
        for micro in range(tc.grad_accum):
            batch = next(data)
            if st.step == 0 and micro == 0:
                self._record_layout(batch)
            fb, prog = self._flow_batch(batch)
            with self._no_sync(micro < tc.grad_accum - 1), self.autocast:
                out, pout = st.wrapped(fb, st.streams.train, prog)
                total = out.total if pout is None else out.total + tc.progress_weight * pout.total
                (total / tc.grad_accum).backward()
            flow_terms = [getattr(out, k).detach().float() for k in TERMS[1:]]
            terms += torch.stack([total.detach().float(), *flow_terms]) / tc.grad_accum
            if pout is not None:
                p_terms += torch.stack([getattr(pout, k).detach().float() for k in PROGRESS_TERMS])
                p_micro += 1
            samples += fb.generated.shape[0]
            tokens += fb.generated.numel()
        grad_norm = torch.nn.utils.clip_grad_norm_(st.params, tc.grad_clip or math.inf)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        values = torch.cat([terms, p_terms]).tolist()  # one device sync
        m = StepMetrics(terms=dict(zip(TERMS, values[:len(TERMS)], strict=True)),
                        progress=dict(zip(PROGRESS_TERMS.values(), values[len(TERMS):], strict=True)),
                        progress_count=p_micro, grad_norm=float(grad_norm), lr=lr, samples=samples, tokens=tokens)
        bad = not (math.isfinite(m.terms["total"]) and math.isfinite(m.grad_norm))
        bad, m.stop = D.any_flag([bad, self._signal is not None], self.info)  # one collective per step
        if bad:
            raise NonFiniteLossError(
                f"non-finite loss at step {st.step + 1} (loss {m.terms['total']}, grad norm {m.grad_norm}); "
                f"stopped without saving; last good checkpoint: {last_ckpt}")
        st.optimizer.step()
        st.optimizer.zero_grad(set_to_none=True)
        st.scheduler.step()
        if st.sharded:  # a root FSDP module keeps its parameters gathered after a forward
            st.model.reshard()
            st.ema.model.reshard()
        st.ema.update(st.model)
        st.step += 1
        return m

    def _record_layout(self, batch: dict[str, torch.Tensor]) -> None:
        ids = D.gather_objects(batch["clip_id"].tolist(), self.info)
        if self.info.is_main:
            layout = {"world_size": self.info.world_size, "num_workers": self.loader.num_workers,
                      "first_batch_clip_ids": ids}
            (self.run_dir / "data_layout.json").write_text(json.dumps(layout))

    def _sample(self, monitor: Monitor) -> None:
        if self.val_clip is None or not (self.info.is_main or self.state.sharded):
            return
        with self.autocast:
            real, fake = generate_sample(self.state.ema.model, self.val_clip, self.sample_verb, self.tc.sample_steps,
                                         self.tc.seed, self.info.device)
        if self.info.is_main:
            png, mp4 = write_sample(real, fake, self.run_dir, self.state.step)
            monitor.log_media(self.state.step, png, mp4)

    def _handle_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._signal = signum

    # ---------------------------------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        """Train to ``train.steps`` (or until SIGTERM/SIGINT, then checkpoint); returns how it ended.

        Raises:
            NonFiniteLossError: a NaN/inf loss or gradient norm; nothing is saved for that step.
        """
        self.info = D.init_distributed(self.tc.device)
        old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            if self.tc.num_threads or (self.info.distributed and self.info.device.type == "cpu"):
                torch.set_num_threads(self.tc.num_threads or max(1, torch.get_num_threads() // self.info.world_size))
            meta = self._open_run()
            self.state = self._build_state(meta)
            if self.mode == "pretrain":  # the layers video never trains, as they exist in this model
                self.untrained = S.untrained_prefixes(self.state.model)
            if self.resume_from is not None:
                self._load(self.resume_from)
            self.autocast = torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=self._bf16())
            if self.tc.sample_every and self.model_cfg.future_frame_tokens:  # action-only: nothing to show
                self.val_clip = self._on_main(lambda: validation_clip(self.cfg.data, self.stats, self.clip_cfg))
            if self.info.is_main:  # only now that the run is accepted: a rejected resume changes nothing on disk
                prune_checkpoints(self.run_dir, self._skipped)
                (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
            result = self._loop()
            # every rank finishes its collectives before any tears the group down (a rank that destroyed it while
            # another still had FSDP2 traffic in flight aborted at exit now and then); only on success: a failing
            # rank must not wait for one that is still training
            D.barrier(self.info)
            return result
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            D.shutdown()

    def _loop(self) -> TrainResult:
        tc, st = self.tc, self.state
        monitor = Monitor(self.run_dir, self.cfg.logger, self.cfg, tc.steps, st.step, self.info.is_main)
        if self.resume_from is not None:
            monitor.write(f"resumed from {self.resume_from} (step {st.step})")
        last_ckpt, data, window = self.resume_from, iter(self.loader), MetricsWindow()
        try:
            while st.step < tc.steps:
                m = self.train_step(data, last_ckpt)
                window.add(m)
                if m.stop and self._signal is None:
                    self._signal = signal.SIGTERM  # another rank was signalled
                if st.step % tc.log_every == 0 or st.step == tc.steps or m.stop:
                    row = D.mean_over_ranks(window.row(self.info.world_size), self.info)
                    window = MetricsWindow()
                    monitor.log(st.step, row)
                    postfix = {"loss": row["loss/total"], "tok/s": row["tokens_per_s"]}
                    if "progress/mae" in row:
                        postfix["prog_mae"] = row["progress/mae"]
                    monitor.step(st.step, postfix)
                else:
                    monitor.step(st.step)
                if tc.sample_every and st.step % tc.sample_every == 0:
                    self._sample(monitor)
                if st.step % tc.ckpt_every == 0 or st.step == tc.steps or m.stop:
                    last_ckpt = self._save() or last_ckpt
                if m.stop:  # agreed by every rank, so all leave the loop at the same step
                    break
            if self._signal is not None:
                monitor.write(f"stopped by signal {signal.Signals(self._signal).name} at step {st.step}; "
                              f"checkpoint: {last_ckpt}")
            return TrainResult(st.step, last_ckpt, self._signal)
        finally:
            monitor.close()
