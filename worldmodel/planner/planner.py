"""Sampling-based planning over action chunks: best-of-N, CEM and MPPI, batched over candidates.

The planner sees a world model only through three callables, bundled in :class:`PlanFns` (docs/architecture.md,
"Planning"):

* ``propose(ctx, n, horizon, steps, generator) -> (actions (n, T, A), frames (n, T, ...))``: the policy's
  proposals and the futures it imagined with them;
* ``imagine(ctx, actions (n, T, A), steps, generator) -> frames (n, T, ...)``: the dynamics;
* ``cost(ctx, frames (n, T, ...), actions (n, T, A)) -> (n,)``: lower is better.

Frames are opaque to the planner (any tensor with a leading candidate axis), so the same code plans with the
video world model (:func:`worldmodel.planner.scoring.world_model_fns`) and with a quadratic toy in the tests.
Every call handles all candidates at once; the only Python loop is over iterations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.planner.config import PlannerConfig


@dataclass
class PlanContext:
    """What one ``plan`` call is about, handed to every callable.

    Attributes:
        frames: the observation context (the callables' own format, e.g. (1, K, C, H, W) model-space frames).
        language: the instruction embedding (callables' format).
        goal: the goal (e.g. a goal frame) or None.
        cache: per-plan scratch space for the callables (e.g. goal features computed once).
    """

    frames: Any
    language: Any
    goal: Any = None
    cache: dict[str, Any] = field(default_factory=dict)


ProposeFn = Callable[[PlanContext, int, int, int, torch.Generator], tuple[Tensor, Tensor]]
ImagineFn = Callable[[PlanContext, Tensor, int, torch.Generator], Tensor]
CostFn = Callable[[PlanContext, Tensor, Tensor], Tensor]


@dataclass
class PlanFns:
    """A world model as the planner sees it.

    Attributes:
        propose: ``(ctx, n, horizon, steps, generator) -> (actions (n, T, A), frames (n, T, ...))``.
        imagine: ``(ctx, actions (n, T, A), steps, generator) -> frames (n, T, ...)``.
        cost: ``(ctx, frames (n, T, ...), actions (n, T, A)) -> (n,)``, lower is better.
        action_low, action_high: (A,) bounds every sampled action is clipped to.
        action_scale: (A,) the scale of each dim, for the Gaussian's std floor (default ``(high - low) / 2``).
        prepare: ``(frames, language, goal) -> PlanContext`` (default: wrap them unchanged).
        render: ``(ctx, chosen imagined frames (T, ...)) -> PlanResult.imagined_frames`` (default: numpy).
        device: where candidates live and random numbers are drawn.
    """

    propose: ProposeFn
    imagine: ImagineFn
    cost: CostFn
    action_low: Tensor
    action_high: Tensor
    action_scale: Tensor | None = None
    prepare: Callable[[Any, Any, Any], PlanContext] | None = None
    render: Callable[[PlanContext, Tensor], np.ndarray] | None = None
    device: torch.device | str = "cpu"


@dataclass
class PlanResult:
    """The outcome of one ``plan`` call.

    Attributes:
        actions: (T, A) float32, the chosen chunk (in the callables' action units: RT-1 units for the world model).
        imagined_frames: (T, ...) what the model expects to see after each action ((T, H, W, 3) uint8 for the
            world model).
        scores: (N,) float32, ``-cost`` of the final population (higher is better).
        candidates: (N, T, A) float32, the final population (``actions`` is its best-scoring member).
        score: the chosen chunk's score.
        history: per iteration (proposals first), the mean elite cost (``cem``) or the best cost so far
            (``best_of_n``, ``mppi``).
        timing: milliseconds spent in ``propose_ms``, ``imagine_ms``, ``score_ms`` and ``total_ms``.
    """

    actions: np.ndarray
    imagined_frames: np.ndarray
    scores: np.ndarray
    candidates: np.ndarray
    score: float
    history: list[float]
    timing: dict[str, float]


@dataclass
class _Population:
    """Evaluated candidates: actions (n, T, A), frames (n, T, ...), cost (n,)."""

    actions: Tensor
    frames: Tensor
    cost: Tensor

    def take(self, index: Tensor) -> _Population:
        return _Population(self.actions[index], self.frames[index], self.cost[index])

    def cat(self, other: _Population) -> _Population:
        return _Population(torch.cat([self.actions, other.actions]), torch.cat([self.frames, other.frames]),
                           torch.cat([self.cost, other.cost]))


class Planner:
    """Imagine the futures of candidate action chunks, score them, return the best.

    The planner sees callables only (:class:`PlanFns`), never a model: it is tested on a toy cost with a known
    optimum, and :func:`~worldmodel.planner.scoring.world_model_fns` (or :func:`make_planner`) builds the
    callables of a :class:`worldmodel.WorldModel`.

    Args:
        fns: propose / imagine / cost callables and the action bounds.
        config: the search settings.

    Example::

        planner = make_planner(world_model, PlannerConfig(method="cem"))  # = Planner(world_model_fns(wm, cfg), cfg)
        result = planner.plan(frames, language)   # frames (K, H, W, 3) uint8, language (512,)
        env.step(result.actions[0])
    """

    def __init__(self, fns: PlanFns, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        if not isinstance(fns, PlanFns):
            raise TypeError(f"Planner takes PlanFns, got {type(fns).__name__}; for a world model use "
                            "make_planner(world_model, config) or Planner(world_model_fns(world_model, config))")
        model = self.fns = fns
        dev = torch.device(model.device)
        self.device = dev
        self.low = torch.as_tensor(model.action_low, dtype=torch.float32, device=dev)
        self.high = torch.as_tensor(model.action_high, dtype=torch.float32, device=dev)
        scale = model.action_scale if model.action_scale is not None else (self.high - self.low) / 2
        self.scale = torch.as_tensor(scale, dtype=torch.float32, device=dev)
        self.generator = torch.Generator(device=dev)
        self.reset(self.config.seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the planner's generator (``config.seed`` when None): equal seeds give equal plans."""
        self.generator.manual_seed(self.config.seed if seed is None else int(seed))

    # ------------------------------------------------------------------------------------------------ plan
    def plan(self, frames: Any, language: Any, goal_frame: Any = None) -> PlanResult:
        """Search for the best action chunk.

        Args:
            frames: the context frames, e.g. (K, H, W, 3) uint8 for the world model.
            language: the instruction embedding, e.g. (512,) float32.
            goal_frame: optional goal, e.g. (H, W, 3) uint8, scored by feature distance (the world model's
                callables require ``goal_weight > 0`` with a goal rather than ignore it).

        Returns:
            :class:`PlanResult`.

        Raises:
            ValueError: naming the field, for inputs the callables reject (the world model's: frames not uint8
                (K >= 1, H, W, 3); language not ``lang_dim`` finite values; a goal with ``goal_weight = 0``).
        """
        cfg, fns = self.config, self.fns
        self._timing = {"propose_ms": 0.0, "imagine_ms": 0.0, "score_ms": 0.0}
        start = time.perf_counter()
        with torch.no_grad():
            if fns.prepare is not None:
                ctx = fns.prepare(frames, language, goal_frame)
            else:
                ctx = PlanContext(frames, language, goal_frame)
            with self._timed("propose_ms"):
                actions, imagined = fns.propose(ctx, cfg.num_candidates, cfg.horizon, cfg.sampling_steps,
                                                self.generator)
                actions = self._clip(actions.to(self.device, torch.float32))
            if cfg.reimagine:
                imagined = self._imagine(ctx, actions)
            pop = _Population(actions, imagined, self._cost(ctx, imagined, actions))
            search = {"best_of_n": self._best_of_n, "cem": self._cem, "mppi": self._mppi}[cfg.method]
            pop, history = search(ctx, pop)
            best = int(torch.argmin(pop.cost))
            chosen = pop.frames[best]
            rendered = fns.render(ctx, chosen) if fns.render else chosen.detach().cpu().numpy()
        self._sync()
        timing = {**self._timing, "total_ms": 1e3 * (time.perf_counter() - start)}
        return PlanResult(
            actions=pop.actions[best].cpu().numpy().astype(np.float32),
            imagined_frames=rendered,
            scores=(-pop.cost).cpu().numpy().astype(np.float32),
            candidates=pop.actions.cpu().numpy().astype(np.float32),
            score=float(-pop.cost[best]),
            history=history,
            timing=timing,
        )

    # --------------------------------------------------------------------------------------------- methods
    def _best_of_n(self, ctx: PlanContext, pop: _Population) -> tuple[_Population, list[float]]:
        return pop, [float(pop.cost.min())]

    def _cem(self, ctx: PlanContext, pop: _Population) -> tuple[_Population, list[float]]:
        """CEM with elites carried over *with their costs* (as iCEM), so the elite cost never increases."""
        e = self.config.elites
        elites = pop.take(torch.topk(-pop.cost, e).indices)
        history = [float(elites.cost.mean())]
        for _ in range(self.config.iterations):
            mean, std = self._fit(elites.actions, None)
            fresh = self._evaluate(ctx, self._sample(mean, std, self.config.num_candidates - e))
            pop = elites.cat(fresh)
            elites = pop.take(torch.topk(-pop.cost, e).indices)
            history.append(float(elites.cost.mean()))
        return pop, history

    def _mppi(self, ctx: PlanContext, pop: _Population) -> tuple[_Population, list[float]]:
        """MPPI: refit mean and std with weights ``softmax(-(cost - min) / (temperature · std(cost)))``; the best
        chunk seen so far is carried (with its cost) so the returned plan never gets worse than the proposals.

        Costs are measured in units of their spread across the population, so one temperature works for any
        cost scale (the world model's scores have no natural unit).
        """
        history = [float(pop.cost.min())]
        for _ in range(self.config.iterations):
            spread = pop.cost.std().clamp_min(1e-8)
            w = torch.softmax(-(pop.cost - pop.cost.min()) / (self.config.temperature * spread), dim=0)  # (n,)
            mean, std = self._fit(pop.actions, w)
            best = pop.take(torch.argmin(pop.cost)[None])
            samples = self._sample(mean, std, self.config.num_candidates - 2)
            pop = best.cat(self._evaluate(ctx, torch.cat([self._clip(mean[None]), samples])))
            history.append(float(pop.cost.min()))
        return pop, history

    # ------------------------------------------------------------------------------------------- helpers
    def _fit(self, actions: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor]:
        """Gaussian over chunks (T, A) fitted to (n, T, A) actions (uniform or given weights (n,)), with the
        std floored at ``init_std · scale``."""
        w = torch.full(actions.shape[:1], 1.0 / actions.shape[0], device=actions.device) if weights is None \
            else weights
        mean = torch.einsum("n,nta->ta", w, actions)
        var = torch.einsum("n,nta->ta", w, (actions - mean) ** 2)
        return mean, torch.maximum(var.sqrt(), self.config.init_std * self.scale)

    def _sample(self, mean: Tensor, std: Tensor, n: int) -> Tensor:
        """n chunks from N(mean, std²), clipped to the action bounds: (n, T, A)."""
        z = torch.randn((n, *mean.shape), generator=self.generator, device=self.generator.device)
        return self._clip(mean + std * z.to(mean.device))

    def _clip(self, actions: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(actions, self.low), self.high)

    def _evaluate(self, ctx: PlanContext, actions: Tensor) -> _Population:
        frames = self._imagine(ctx, actions)
        return _Population(actions, frames, self._cost(ctx, frames, actions))

    def _imagine(self, ctx: PlanContext, actions: Tensor) -> Tensor:
        with self._timed("imagine_ms"):
            return self.fns.imagine(ctx, actions, self.config.sampling_steps, self.generator)

    def _cost(self, ctx: PlanContext, frames: Tensor, actions: Tensor) -> Tensor:
        with self._timed("score_ms"):
            cost = self.fns.cost(ctx, frames, actions).to(self.device, torch.float32)
        if cost.shape != actions.shape[:1]:
            raise ValueError(f"cost must return one value per candidate ({actions.shape[0]},), "
                             f"got {tuple(cost.shape)}")
        return cost

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def _timed(self, key: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self._timing[key] += 1e3 * (time.perf_counter() - start)
