"""Teach the progress head to *rank* imagined futures, from futures whose true outcome the simulator told us.

The progress head learns in fine-tuning from successful demonstrations only, on real frames, to predict
``step / episode length``; the planner asks it something else: which of N imagined futures of the *same* state is
best, on frames the model imagined. This module re-trains the head for that question (docs/planner.md, "A scorer
that ranks"):

* the data (:class:`RankedFutures`) are decisions of the planner itself in closed loop, with failures, recorded by
  ``planner.diagnostics``: the context, the N candidates' *imagined* futures and each candidate's true task progress
  after executing it in a restored copy of the simulator (stages completed + within-stage fraction), and the true
  simulator's rendered futures of the same candidates (``real``);
* the head trains on either futures (``futures="imagined"`` or ``"real"``) and is measured on both: trained on the
  true frames it isolates the scorer (the ladder's ``learned_on_true`` rung) and tells whether it transfers to
  imagination;
* the head reads the DiT's own hidden states of (context + imagined clip), exactly as the planner's cost does; the
  DiT stays frozen, so its pooled features are computed once (:func:`pooled_features`) and the head trains on them;
* the loss (:func:`ranking_loss`) is a pairwise logistic loss between the candidates of one decision, each pair
  weighted by how much their true progress differs, plus a small binary cross-entropy to the true progress per
  stage count that keeps the scale of the scores comparable across decisions.

The collection loop lives in ``scripts/train_scorer.py`` (it runs the ``planner`` policy, which this layer may not
import); the result is a checkpoint with the new head (:func:`worldmodel.training.checkpoint.export_weights`).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.models.progress import ProgressHead, clean_frame_states
from worldmodel.planner.ranking import spearman

# which futures of a decision the scorer reads: the world model's imagination or the true simulator's frames
FUTURES = ("imagined", "real")


@dataclass
class RankedFutures:
    """M diagnosed decisions of N candidates each.

    Attributes:
        context: (M, K, h, w, 3) uint8, the context frames at the model's resolution.
        imagined: (M, N, T, h, w, 3) uint8, the futures the planner scored.
        true_progress: (M, N) float32, true progress after each candidate (stages; -1: unstable physics).
        num_stages: (M,) int64, the task's stage count (the scale of the progress).
        lang: (M, lang_dim) float32, the sentence embedding.
        instruction: (M,) str, the instruction text (instruction tokens are computed from it).
        task: (M,) str, the task name.
        episode: (M,) int64, the episode seed (decisions of one episode go to the same split).
        real: (M, N, T, h, w, 3) uint8, the true simulator's futures of the same candidates (what the scorer sees
            in the ladder's ``learned_on_true`` rung).
    """

    context: np.ndarray
    imagined: np.ndarray
    true_progress: np.ndarray
    num_stages: np.ndarray
    lang: np.ndarray
    instruction: np.ndarray
    task: np.ndarray
    episode: np.ndarray
    real: np.ndarray

    def __post_init__(self) -> None:
        m = len(self.context)
        for f in fields(self):
            if len(getattr(self, f.name)) != m:
                raise ValueError(f"RankedFutures.{f.name} has {len(getattr(self, f.name))} rows, context has {m}")
        if self.imagined.shape[:2] != self.true_progress.shape:
            raise ValueError(f"imagined {self.imagined.shape} and true_progress {self.true_progress.shape} disagree")
        if self.real.shape != self.imagined.shape:
            raise ValueError(f"real {self.real.shape} and imagined {self.imagined.shape} futures disagree")

    def __len__(self) -> int:
        return len(self.context)

    def subset(self, rows: np.ndarray) -> RankedFutures:
        return RankedFutures(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` atomically (no pickles: strings are stored as fixed-width unicode)."""
        path = Path(path)
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RankedFutures:
        """Read :meth:`save`'s file; a missing array is one error naming the file and the key."""
        names = [f.name for f in fields(cls)]
        with np.load(Path(path), allow_pickle=False) as z:
            missing = [k for k in names if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a RankedFutures file, missing {missing}")
            return cls(**{k: z[k] for k in names})

    @classmethod
    def concatenate(cls, parts: list[RankedFutures]) -> RankedFutures:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


def pooled_features(world_model: Any, data: RankedFutures, head: ProgressHead,
                    futures: str = "imagined") -> tuple[Tensor, Tensor]:
    """The frozen DiT's pooled hidden states of every candidate's (context + future) clip, the future being
    ``data.imagined`` or ``data.real`` (``futures``: ``imagined`` or ``real``).

    Returns:
        features (M, N, K+T, D) float32 and the conditions' sentence embeddings (M, lang_dim), on the CPU.
    """
    if futures not in FUTURES:
        raise ValueError(f"futures must be one of {FUTURES}, got {futures!r}")
    wm = world_model
    frames = getattr(data, futures)
    feats = []
    with torch.no_grad():
        for i in range(len(data)):
            n = frames.shape[1]
            context = wm.encode_frames(data.context[i])[None].expand(n, -1, -1, -1, -1)
            clip = torch.cat([context, wm.encode_frames(frames[i])], dim=1)  # (N, K+T, 3, h, w)
            lang = wm.embed_language({"natural_language_embedding": data.lang[i],
                                      "natural_language_instruction": str(data.instruction[i])}, n)
            feats.append(clean_frame_states(wm.model, clip, lang, head.block).float().cpu())
    return torch.stack(feats), torch.as_tensor(data.lang, dtype=torch.float32)


def ranking_loss(logits: Tensor, progress: Tensor, num_stages: Tensor, margin: float = 0.01,
                 bce_weight: float = 0.1) -> Tensor:
    """Pairwise ranking loss over the candidates of each decision, plus a calibration term.

    Args:
        logits: (M, N) the head's logits of the candidates' last imagined frame.
        progress: (M, N) their true progress (stages).
        num_stages: (M,) stage counts.
        margin: pairs whose true progress differs by less are ties and left out.
        bce_weight: weight of the BCE between ``sigmoid(logits)`` and ``progress / num_stages`` (clipped to [0, 1]).

    Returns:
        The scalar loss: ``sum_pairs |dp| · softplus(-(s_i - s_j))`` over pairs with ``p_i > p_j + margin``, divided
        by the sum of ``|dp|``, plus the weighted BCE.
    """
    dp = progress[:, :, None] - progress[:, None, :]  # (M, N, N): p_i - p_j
    ds = logits[:, :, None] - logits[:, None, :]
    weight = torch.where(dp > margin, dp, torch.zeros_like(dp))
    pair = (weight * F.softplus(-ds)).sum() / weight.sum().clamp_min(1e-8)
    target = (progress / num_stages[:, None].float()).clamp(0.0, 1.0)
    return pair + bce_weight * F.binary_cross_entropy_with_logits(logits, target)


def mean_spearman(scores: Tensor, progress: Tensor) -> float:
    """Mean over decisions of the Spearman correlation of scores and true progress (undefined decisions skipped)."""
    values = [spearman(s, p) for s, p in zip(scores.numpy(), progress.numpy(), strict=True)]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


@dataclass
class ScorerReport:
    """Validation ranking before and after training (mean Spearman over held-out decisions, top-1 rate).

    ``*_other_*`` are the same held-out decisions scored on the other futures (trained on ``real``: how the head
    ranks the imagined futures, i.e. whether a scorer learned on true frames transfers to the planner's).
    """

    futures: str
    decisions_train: int
    decisions_val: int
    spearman_before: float
    spearman_after: float
    top1_before: float
    top1_after: float
    spearman_other_before: float
    spearman_other_after: float
    top1_other_before: float
    top1_other_after: float


def top1_rate(scores: Tensor, progress: Tensor) -> float:
    """Fraction of decisions whose top-scored candidate has the true best progress (ties count)."""
    best = progress.max(dim=1).values
    chosen = progress.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)
    return float((chosen >= best - 1e-9).float().mean()) if len(scores) else math.nan


def train_scorer(world_model: Any, data: RankedFutures, steps: int = 400, lr: float = 1e-3, batch: int = 32,
                 val_fraction: float = 0.2, seed: int = 0,
                 futures: str = "imagined") -> tuple[ProgressHead, ScorerReport]:
    """Fine-tune a copy of the world model's progress head to rank ``data``'s futures.

    Decisions are split by episode (``val_fraction`` of the episodes held out) and the report compares the
    original head with the trained one on the held-out decisions, on the futures it trained on (``futures``:
    ``imagined`` or ``real``) and on the other ones.

    Returns:
        The trained head (a copy; the world model keeps its own) and a :class:`ScorerReport`.
    """
    if world_model.progress_head is None:
        raise ValueError("the world model has no progress head to re-train")
    if len(data) == 0:
        raise ValueError("no decisions to train the scorer on")
    if futures not in FUTURES:
        raise ValueError(f"futures must be one of {FUTURES}, got {futures!r}")
    other = FUTURES[1 - FUTURES.index(futures)]
    head = copy.deepcopy(world_model.progress_head).cpu().float().train()
    head.requires_grad_(True)
    feats, lang = pooled_features(world_model, data, head, futures)  # (M, N, K+T, D), (M, L)
    progress = torch.as_tensor(data.true_progress, dtype=torch.float32)
    stages = torch.as_tensor(data.num_stages)
    rng = np.random.default_rng(seed)
    episodes = np.unique(data.episode)
    held = set(rng.permutation(episodes)[: max(1, int(round(val_fraction * len(episodes))))].tolist()) \
        if len(episodes) > 1 else set()
    val = np.array([e in held for e in data.episode])
    tr = np.flatnonzero(~val) if (~val).any() else np.arange(len(data))
    va = np.flatnonzero(val)
    # the other futures are only measured, on the held-out decisions
    feats_other = pooled_features(world_model, data.subset(va), head, other)[0] if len(va) else feats[va]

    def scores(h: ProgressHead, f: Tensor, lg: Tensor) -> Tensor:
        m, n, t, d = f.shape
        return h(f.reshape(m * n, t, d), lg.repeat_interleave(n, dim=0))[:, -1].reshape(m, n)

    def measure(h: ProgressHead, f: Tensor) -> tuple[float, float]:
        with torch.no_grad():
            s = scores(h, f, lang[va]) if len(va) else torch.zeros(0, progress.shape[1])
        return mean_spearman(s, progress[va]), top1_rate(s, progress[va])

    before, before_other = measure(head, feats[va]), measure(head, feats_other)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = tr[torch.randint(len(tr), (min(batch, len(tr)),), generator=gen).numpy()]
        loss = ranking_loss(scores(head, feats[rows], lang[rows]), progress[rows], stages[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    head.eval().requires_grad_(False)
    after, after_other = measure(head, feats[va]), measure(head, feats_other)
    report = ScorerReport(futures, len(tr), len(va), before[0], after[0], before[1], after[1],
                          before_other[0], after_other[0], before_other[1], after_other[1])
    return head, report
