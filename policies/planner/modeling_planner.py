"""The ``planner`` policy: at every decision, search over the world model's imagined futures, execute the best.

Every ``execute_steps`` actions it calls :meth:`worldmodel.planner.Planner.plan` on the last K camera frames and
the instruction embedding, queues the first ``execute_steps`` actions of the best chunk, and records the
decision's latency and the planner's propose / imagine / score split. Context handling, the video hook and the
latency statistics are shared with :class:`~policies.dit.DiTPolicy` (the same model without search).

The planner's generator is re-seeded at every decision from (episode seed, decision index), so the proposals of a
decision depend only on its context, never on how many random numbers earlier searches drew: every rung of the
oracle ladder (``planner.scorer``, :mod:`worldmodel.planner.oracle`) ranks the same proposals from the same state.
The simulator rungs and ``planner.diagnostics`` use the env the harness hands to the policy; the diagnostics run
after the timed decision, so decision latencies exclude them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from policies.dit.modeling_dit import DiTPolicy, load_world_model, threshold_gripper
from policies.planner.configuration_planner import PlannerPolicyConfig
from worldmodel.planner import Planner, PlanResult, world_model_fns
from worldmodel.planner.oracle import FutureLog, SimulatorRollouts, ladder_fns
from worldmodel.planner.ranking import DecisionRanking, rank_decision, summarize


@dataclass
class Diagnosis:
    """One diagnosed decision: what was scored and what the true simulator says about it.

    Attributes:
        context: (K', H, W, 3) uint8, the camera frames the decision was made from.
        candidates: (N, T, A) float32, the final population.
        scores: (N,) float32, the planner's scores (higher is better).
        true_progress: (N,) float64, the true task progress after each candidate chunk.
        imagined: (N, T, h, w, 3) uint8 futures the planner scored at the model's resolution (None when it scored
            the true simulator's).
        real: (N, T, h, w, 3) uint8, the true simulator's futures of the same candidates at the model's resolution
            (None when ``imagined`` is: only imagined futures are compared with them).
    """

    context: np.ndarray
    candidates: np.ndarray
    scores: np.ndarray
    true_progress: np.ndarray
    imagined: np.ndarray | None
    real: np.ndarray | None = None


def decision_seed(seed: int, decision: int) -> int:
    """The planner's seed at decision ``decision`` (0, 1, ...) of an episode seeded ``seed``."""
    return int(np.random.SeedSequence([abs(int(seed)), int(decision)]).generate_state(1)[0])


class PlannerPolicy(DiTPolicy):
    """Model-predictive control with the world model.

    Args:
        env: the live env; needed by ``planner.scorer=oracle`` / ``learned_on_true`` and ``planner.diagnostics``
            (candidates are executed in restored snapshots of it), unused otherwise.
        config: :class:`PlannerPolicyConfig`; keyword overrides of its fields too (``checkpoint=...``,
            ``planner={"method": "cem"}``).
        world_model: an already built :class:`worldmodel.WorldModel` (instead of ``config.checkpoint``).
        imaginer: an already built second world model that imagines and scores (instead of
            ``config.imagine_checkpoint``).
        seed: default seed of the planner's noise.
    """

    def __init__(self, env: Any = None, config: PlannerPolicyConfig | None = None, world_model: Any = None,
                 seed: int | None = None, imaginer: Any = None, **overrides: Any) -> None:
        base = config or PlannerPolicyConfig()
        known = {f.name for f in fields(PlannerPolicyConfig)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown planner policy keys {sorted(unknown)}; allowed: {sorted(known)} (the search "
                             "settings go in `planner`: a PlannerConfig or a mapping of its fields)")
        self.config = replace(base, **overrides)
        cfg = self.config
        pcfg = cfg.planner
        if world_model is None:
            world_model = load_world_model(cfg.checkpoint, cfg.device, cfg.ema)
        if imaginer is None and cfg.imagine_checkpoint:
            imaginer = load_world_model(cfg.imagine_checkpoint, cfg.device, cfg.ema)
        self.imaginer = imaginer
        scorer_model = world_model if imaginer is None else imaginer  # the model whose space the futures are in
        self.env = env
        self.simulator: SimulatorRollouts | None = None
        if pcfg.scorer in ("oracle", "learned_on_true") or pcfg.diagnostics:
            self.simulator = SimulatorRollouts(env, lambda a: threshold_gripper(a, cfg.gripper_threshold),
                                               pcfg.oracle_hold_steps)
        fns = ladder_fns(world_model_fns(world_model, pcfg, imaginer), pcfg.scorer, self.simulator,
                         scorer_model.encode_frames)
        # Imagination metrics need the frames the planner scored, when they are the model's own.
        self._futures = FutureLog() if pcfg.diagnostics and pcfg.scorer in ("learned", "none") else None
        if self._futures is not None:
            fns = self._futures.wrap(fns)
        self.planner = Planner(fns, pcfg)
        self._timings: list[dict[str, float]] = []
        self._rankings: list[DecisionRanking] = []
        self._pending: PlanResult | None = None
        self.last_result: PlanResult | None = None  # the latest decision's search (candidates, scores, timing)
        # with diagnostics: the latest decision's true outcome of its final candidates (what a scorer learns from)
        self.last_diagnosis: Diagnosis | None = None
        self._setup(world_model, seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        s = self._seed if seed is None else seed
        self._episode_seed = self.config.planner.seed if s is None else int(s)
        self.planner.reset(self._episode_seed)
        self._timings = []
        self._rankings = []
        self._diagnostics_ms: list[float] = []
        self._pending = None
        self.last_diagnosis = None
        if self.simulator is not None:
            self.simulator.steps = 0

    def decide(self, frames: np.ndarray, language: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plan from (K', H, W, 3) uint8 frames and a (512,) embedding -> actions (T, 7), imagined (T, H, W, 3)."""
        self.planner.reset(decision_seed(self._episode_seed, len(self._timings)))
        if self.simulator is not None:
            self.simulator.begin()  # the simulator rungs snapshot again in `prepare`; diagnostics need it too
        result = self.planner.plan(frames, language)
        self._timings.append(result.timing)
        self._pending = self.last_result = result
        return result.actions, result.imagined_frames

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """As :meth:`DiTPolicy.select_action`; with ``planner.diagnostics``, a new decision is then ranked against
        the true simulator (before the env steps, outside the timed decision)."""
        action = super().select_action(obs)
        if self._pending is not None and self.config.planner.diagnostics:
            start = time.perf_counter()
            self._rankings.append(self._diagnose(self._pending))
            self._diagnostics_ms.append(1e3 * (time.perf_counter() - start))
        self._pending = None
        return action

    def _diagnose(self, result: PlanResult) -> DecisionRanking:
        """Rank ``result``'s final candidates by their true progress (cached rollouts for the simulator rungs) and,
        when the scored futures were imagined, compare them with the true ones at the model's resolution."""
        assert self.simulator is not None
        true = self.simulator.rollout(result.candidates)
        imagined = real = None
        wm = self.world_model if self.imaginer is None else self.imaginer  # the futures are in its space
        if self._futures is not None and wm.imagines:
            imagined = wm.decode_frames(self._futures.lookup(result.candidates))
            real = wm.decode_frames(wm.encode_frames(true.frames))
        self.last_diagnosis = Diagnosis(np.stack(self._context), result.candidates, result.scores, true.progress,
                                        imagined, real)
        chosen = int(np.argmax(result.scores))  # the planner's pick: the first lowest cost
        return rank_decision(result.scores, true.progress, chosen, imagined, real)

    def execute_steps(self, horizon: int) -> int:
        return min(self.config.planner.execute_steps, horizon)

    def episode_stats(self) -> dict[str, Any]:
        """Decision latencies (ms, p50 / p95) plus the mean propose / imagine / score split per decision; with
        ``planner.diagnostics``, ``ranking`` (:func:`worldmodel.planner.ranking.summarize`)."""
        stats = super().episode_stats()
        if self._timings:
            stats["plan_ms_mean"] = {k: float(np.mean([t[k] for t in self._timings])) for k in self._timings[0]}
        stats["method"] = self.config.planner.method
        stats["scorer"] = self.config.planner.scorer
        if self.simulator is not None:
            stats["simulator_steps"] = self.simulator.steps
        if self.config.planner.diagnostics:
            stats["ranking"] = summarize(self._rankings)
            stats["diagnostics_ms_mean"] = float(np.mean(self._diagnostics_ms)) if self._diagnostics_ms else None
        return stats
