"""What one optimiser step reports (:class:`StepMetrics`) and the window of steps between two log rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Flow-objective terms logged as ``loss/<term>`` (``total`` includes the weighted progress loss).
TERMS = ("total", "flow", "rep", "cosine", "masked_fraction", "flow_frames", "flow_actions", "keypoint_actions")
# Progress-head terms (fine-tuning, micro-batches with actions only) -> metrics keys.
PROGRESS_TERMS = {"total": "loss/progress", "mse": "progress/mse", "mae": "progress/mae"}


@dataclass
class StepMetrics:
    """One optimiser step.

    Attributes:
        terms: each of :data:`TERMS`, averaged over the step's micro-batches.
        progress: sums of the progress terms (metrics keys of :data:`PROGRESS_TERMS`) over the micro-batches
            that trained the progress head, and ``progress_count``, their number.
        grad_norm: global gradient norm before clipping.
        lr: the learning rate the step used.
        samples, tokens: clips and generated tokens of this rank in the step.
        stop: a signal asked every rank to stop after this step.
    """

    terms: dict[str, float]
    progress: dict[str, float]
    progress_count: int
    grad_norm: float
    lr: float
    samples: int
    tokens: int
    stop: bool = False


@dataclass
class MetricsWindow:
    """Sums of :class:`StepMetrics` since the last log row; :meth:`row` averages them (start a new window after)."""

    terms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TERMS, 0.0))
    progress: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PROGRESS_TERMS.values(), 0.0))
    steps: int = 0
    progress_count: int = 0
    samples: int = 0
    tokens: int = 0
    start: float = field(default_factory=time.perf_counter)
    last: StepMetrics | None = None

    def add(self, m: StepMetrics) -> None:
        for k in TERMS:
            self.terms[k] += m.terms[k]
        for k, v in m.progress.items():
            self.progress[k] += v
        self.steps += 1
        self.progress_count += m.progress_count
        self.samples += m.samples
        self.tokens += m.tokens
        self.last = m

    def row(self, world_size: int) -> dict[str, Any]:
        """The log row of this rank (losses are means over the window's steps; progress terms over its
        micro-batches with actions; lr and grad norm of the last step; throughput of all ranks)."""
        dt = max(time.perf_counter() - self.start, 1e-9)
        row: dict[str, Any] = {f"loss/{k}": v / self.steps for k, v in self.terms.items()}
        if self.progress_count:
            row.update({k: v / self.progress_count for k, v in self.progress.items()})
        row.update({"lr": self.last.lr, "grad_norm": self.last.grad_norm,
                    "samples_per_s": self.samples * world_size / dt, "tokens_per_s": self.tokens * world_size / dt,
                    "steps_per_s": self.steps / dt})
        return row
