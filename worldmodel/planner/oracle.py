"""The oracle ladder: the same proposals ranked by the true simulator instead of the world model.

The planner still sees callables only (:class:`~worldmodel.planner.planner.PlanFns`); :func:`ladder_fns` swaps
the ``imagine`` and ``cost`` of a world model's callables for ones backed by the live env:

* ``learned`` (the planner): the world model's imagined futures, the learned scorer (the callables unchanged);
* ``learned_on_true``: the true simulator's futures (rendered, converted to model space), the learned scorer;
* ``oracle``: the true simulator's futures, scored by the true task progress (``info["progress"]``: stages
  completed, then the within-stage fraction), the upper bound of best-of-N over these proposals;
* ``none``: no scoring, the first proposal (the policy verb alone, with the very same proposals).

Proposals always come from the base ``propose`` with the planner's generator, and the simulator draws no random
numbers, so the rung does not change the proposals. :class:`SimulatorRollouts` executes each candidate chunk from
a snapshot of the live env (restore, step, collect the frames and the progress, restore); the live episode is
left exactly as it was. The simulator cannot batch: it loops over candidates, and caches each chunk's outcome for
the rest of the decision (re-imagining or a diagnostic pass reuses it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.planner.planner import PlanContext, PlanFns

# The true progress of a chunk whose rollout made the physics unstable (the episode would end in failure):
# below every real progress value, which lies in [0, num_stages].
UNSTABLE_PROGRESS = -1.0


@dataclass
class Rollouts:
    """The true outcome of n action chunks from the same state.

    Attributes:
        frames: (n, T, H, W, 3) uint8, the camera after each action (the last frame repeated after an episode end).
        progress: (n,) float64, the true task progress after the chunk (and the hold steps).
        terminated: (n,) bool, the task succeeded within the chunk.
    """

    frames: np.ndarray
    progress: np.ndarray
    terminated: np.ndarray


class SimulatorRollouts:
    """Execute candidate chunks in the live env from a snapshot of its state, then restore it.

    Args:
        env: the live env (``gym.make``'d tabletop env, or any env with ``unwrapped.get_state`` / ``set_state``
            and a ``step`` returning ``obs["image"]`` and ``info["progress"]``). Chunks are stepped on
            ``env.unwrapped`` (no time limit inside a look-ahead) and the snapshot is restored through
            :func:`envs.set_state`, which also restores the wrappers' step count.
        action_transform: maps each action before ``step``, to execute what the policy would (e.g. the
            gripper threshold of :func:`policies.dit.modeling_dit.threshold_gripper`).
        hold_steps: zero actions (arm still, gripper held) executed after the chunk before the progress is read.
    """

    def __init__(self, env: Any, action_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 hold_steps: int = 0) -> None:
        if env is None:
            raise ValueError("the simulator rungs (planner.scorer=oracle / learned_on_true, planner.diagnostics) "
                             "need the live env: build the policy with make_policy(name, env=env, ...)")
        if hold_steps < 0:
            raise ValueError(f"hold_steps must be >= 0, got {hold_steps}")
        self.env = env
        self.action_transform = action_transform
        self.hold_steps = int(hold_steps)
        self._state: Any = None
        self._cache: dict[bytes, tuple[np.ndarray, float, bool]] = {}
        self.steps = 0  # simulator steps taken (all decisions), for timing and tests

    def begin(self) -> None:
        """Snapshot the live env and forget the previous decision's rollouts (call once per decision)."""
        import envs

        self._state = envs.get_state(self.env)
        self._cache = {}

    def rollout(self, actions: Any) -> Rollouts:
        """The true futures of chunks from the state at :meth:`begin` (cached per chunk for this decision).

        Args:
            actions: (n, T, A) chunks (numpy or tensor), in the env's action units.

        Returns:
            :class:`Rollouts`; the live env is back at the snapshot.
        """
        if self._state is None:
            raise RuntimeError("SimulatorRollouts.rollout before begin(): no snapshot of the live env")
        acts = actions.detach().cpu().numpy() if isinstance(actions, Tensor) else np.asarray(actions)
        acts = acts.astype(np.float32, copy=False)
        if acts.ndim != 3:
            raise ValueError(f"rollout takes (n, T, A) action chunks, got shape {acts.shape}")
        outs = []
        for chunk in acts:
            key = chunk.tobytes()
            if key not in self._cache:
                self._cache[key] = self._execute(chunk)
            outs.append(self._cache[key])
        return Rollouts(np.stack([o[0] for o in outs]), np.array([o[1] for o in outs], np.float64),
                        np.array([o[2] for o in outs], bool))

    def _execute(self, chunk: np.ndarray) -> tuple[np.ndarray, float, bool]:
        import envs

        sim = self.env.unwrapped
        frames: list[np.ndarray] = []
        progress, terminated, ended = 0.0, False, False
        try:
            for action in chunk:
                if not ended:
                    act = self.action_transform(action) if self.action_transform else action
                    obs, _, terminated, truncated, info = sim.step(act)
                    self.steps += 1
                    frames.append(np.asarray(obs["image"]))
                    progress = float(info["progress"])
                    if truncated and info.get("truncation_reason"):
                        progress = UNSTABLE_PROGRESS
                    ended = bool(terminated or truncated)
                else:
                    frames.append(frames[-1])
            for _ in range(0 if ended else self.hold_steps):
                _, _, terminated, truncated, info = sim.step(np.zeros_like(chunk[0]))
                self.steps += 1
                progress = UNSTABLE_PROGRESS if truncated and info.get("truncation_reason") else \
                    float(info["progress"])
                if terminated or truncated:
                    break
        finally:
            envs.set_state(self.env, self._state)
        return np.stack(frames), progress, bool(terminated)


def ladder_fns(base: PlanFns, scorer: str, simulator: SimulatorRollouts | None = None,
               to_frames: Callable[[np.ndarray], Tensor] | None = None) -> PlanFns:
    """The callables of one rung of the oracle ladder, built on a world model's (or a toy's) callables.

    Args:
        base: the learned callables (:func:`~worldmodel.planner.scoring.world_model_fns`): their ``propose``
            supplies the candidates of every rung, their ``cost`` is the learned scorer.
        scorer: ``learned``, ``learned_on_true``, ``oracle`` or ``none`` (see the module docstring).
        simulator: the live env's rollouts (required by ``learned_on_true`` and ``oracle``).
        to_frames: uint8 (n, T, H, W, 3) rendered frames -> the frames ``base.cost`` reads (e.g.
            ``WorldModel.encode_frames``: model space); required by the simulator rungs.

    Returns:
        :class:`PlanFns`; with a simulator, ``prepare`` snapshots the live env for the decision.
    """
    if scorer == "learned":
        return base
    if scorer == "none":
        def no_cost(ctx: PlanContext, frames: Tensor, actions: Tensor) -> Tensor:
            return torch.zeros(actions.shape[0], device=actions.device)  # all tied: argmin takes the first

        return replace(base, cost=no_cost)
    if scorer not in ("learned_on_true", "oracle"):
        raise ValueError(f"unknown scorer {scorer!r}; one of none, oracle, learned_on_true, learned")
    if simulator is None or to_frames is None:
        raise ValueError(f"scorer={scorer} needs the simulator's rollouts and a to_frames conversion")
    low = torch.as_tensor(base.action_low, dtype=torch.float32)
    high = torch.as_tensor(base.action_high, dtype=torch.float32)

    def prepare(frames: Any, language: Any, goal: Any) -> PlanContext:
        ctx = base.prepare(frames, language, goal) if base.prepare else PlanContext(frames, language, goal)
        simulator.begin()
        return ctx

    def true_futures(actions: Tensor) -> Tensor:
        return to_frames(simulator.rollout(actions).frames).to(actions.device)

    def propose(ctx: PlanContext, n: int, horizon: int, steps: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        actions, _ = base.propose(ctx, n, horizon, steps, gen)
        actions = actions.float()
        actions = torch.minimum(torch.maximum(actions, low.to(actions.device)), high.to(actions.device))
        return actions, true_futures(actions)  # the planner's clip is then a no-op: frames match actions

    def imagine(ctx: PlanContext, actions: Tensor, steps: int, gen: torch.Generator) -> Tensor:
        return true_futures(actions)

    def true_cost(ctx: PlanContext, frames: Tensor, actions: Tensor) -> Tensor:
        return -torch.as_tensor(simulator.rollout(actions).progress, dtype=torch.float32, device=actions.device)

    cost = true_cost if scorer == "oracle" else base.cost
    return replace(base, propose=propose, imagine=imagine, cost=cost, prepare=prepare)


class FutureLog:
    """The frames the planner scored for each candidate of the current decision (for imagination metrics).

    :meth:`wrap` returns callables that record every ``(actions, frames)`` pair ``propose`` and ``imagine``
    return (keyed by the chunk's float32 bytes, after the planner's clip), so that the frames of the final
    population (``PlanResult.candidates``) can be looked up after ``plan``.
    """

    def __init__(self) -> None:
        self._frames: dict[bytes, Tensor] = {}

    def wrap(self, fns: PlanFns) -> PlanFns:
        """``fns`` with recording ``prepare`` (clears the log), ``propose`` and ``imagine``."""
        low = torch.as_tensor(fns.action_low, dtype=torch.float32)
        high = torch.as_tensor(fns.action_high, dtype=torch.float32)

        def record(actions: Tensor, frames: Tensor) -> None:
            a = actions.detach().float()
            a = torch.minimum(torch.maximum(a, low.to(a.device)), high.to(a.device)).cpu().numpy()
            for chunk, f in zip(a.astype(np.float32), frames, strict=True):
                self._frames[chunk.tobytes()] = f

        def prepare(frames: Any, language: Any, goal: Any) -> PlanContext:
            self._frames = {}
            return fns.prepare(frames, language, goal) if fns.prepare else PlanContext(frames, language, goal)

        def propose(ctx: PlanContext, n: int, horizon: int, steps: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
            actions, frames = fns.propose(ctx, n, horizon, steps, gen)
            record(actions, frames)
            return actions, frames

        def imagine(ctx: PlanContext, actions: Tensor, steps: int, gen: torch.Generator) -> Tensor:
            frames = fns.imagine(ctx, actions, steps, gen)
            record(actions, frames)
            return frames

        return replace(fns, propose=propose, imagine=imagine, prepare=prepare)

    def lookup(self, candidates: np.ndarray) -> Tensor:
        """The recorded frames (N, T, ...) of (N, T, A) float32 candidates (``PlanResult.candidates``).

        Raises:
            KeyError: a candidate was never proposed or imagined in this decision.
        """
        return torch.stack([self._frames[np.asarray(c, np.float32).tobytes()] for c in candidates])
