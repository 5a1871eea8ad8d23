"""Probes of whether a policy looks: does its action depend on the image, and on where the object is?

Closed-loop success says *that* grasping fails; these say *why* (docs/experiments.md, "Probe: does the first
action depend on where the can is?"):

* :func:`vision_probe`: the mean first actions of a world model's ``policy`` verb from one env state, with the real
  camera frame, an all-black frame and uniform noise (a policy that looks changes its action), and with the task's
  object moved over a grid of table positions (a policy that localises follows it). Reported next to the scripted
  expert's first actions from the same states; :func:`follow_slope` sums the grid up in one number.
* :func:`expert_trajectory_probe`: along one of the scripted expert's own episodes, the model's mean first action
  from every state the expert visits, beside the expert's noise-free action there; :func:`trajectory_summary` sums
  it up per phase (reach, close, carry, release): closed-loop failures after the first action (a hand that hovers
  and never closes) show here as a phase whose direction or gripper the model gets wrong.
* :func:`localisation_error`: a synthetic check of the architecture alone: train an action-only model whose target
  action is where a square sits in its context frame; held-out MSE (chance 1/3).
* :func:`dynamics_probe`: does the ``dynamics`` verb move the arm where the action says? From one env state, chunks
  that push the hand at full scale along +-x, +-y, +-z are executed in the simulator (true futures) and imagined with
  the *same* noise (so that only the action differs); :func:`~worldmodel.planner.ranking.action_response` says
  whether the imagined futures differ as the true ones do. A planner that scores imagined futures can only rank
  candidates whose futures the model tells apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worldmodel.models import TokenLayout, Tokens, build_model
from worldmodel.models.layout import patchify


@dataclass
class ProbeRow:
    """One probed situation: its label and the mean xyz of the first ``actions`` actions, summed (m)."""

    label: str
    model: np.ndarray
    expert: np.ndarray | None = None


def _sampled_actions(world_model: Any, image: np.ndarray, obs: dict[str, Any], n: int, steps: int,
                     generator: torch.Generator, use_state: bool) -> np.ndarray:
    """(n, F, 7) policy-verb chunks from one observation (without the robot state unless ``use_state``)."""
    if not use_state:
        from worldmodel.data.reader import STATE_KEYS

        obs = {k: v for k, v in obs.items() if k not in dict(STATE_KEYS)}
    return world_model.propose(image[None], obs, n=n, steps=steps, generator=generator).actions


def _mean_first_xyz(world_model: Any, image: np.ndarray, obs: dict[str, Any], n: int, steps: int, actions: int,
                    generator: torch.Generator, use_state: bool = True) -> np.ndarray:
    return _sampled_actions(world_model, image, obs, n, steps, generator, use_state)[:, :actions, :3].sum(1).mean(0)


def vision_probe(world_model: Any, task: str = "PickCan", seed: int = 10003, obj: str = "coke_can",
                 xs: tuple[float, ...] = (0.32, 0.42, 0.52), ys: tuple[float, ...] = (-0.25, -0.15, -0.05),
                 n: int = 16, steps: int = 8, actions: int = 2, use_state: bool = True) -> list[ProbeRow]:
    """Probe rows: ``real`` / ``black`` / ``noise`` frames, then ``obj`` at every (x, y) of the grid.

    Args:
        world_model: a :class:`worldmodel.WorldModel`.
        task, seed: the episode whose first state is probed.
        obj: the body moved over the grid (teleported at its height, then the scene is re-rendered).
        n, steps: policy samples and sampler steps per situation.
        actions: how many first actions are summed.
        use_state: give the model the robot state (False: images and instruction only, as ``policy.use_state``).
    """
    import envs
    from policies import make_policy

    gen = torch.Generator().manual_seed(0)
    env = envs.make(task)
    obs, _ = env.reset(seed=seed)
    sim = env.unwrapped
    rng = np.random.default_rng(0)
    rows = [ProbeRow(name, _mean_first_xyz(world_model, img, obs, n, steps, actions, gen, use_state))
            for name, img in (("real frame", obs["image"]), ("black frame", np.zeros_like(obs["image"])),
                              ("noise frame", rng.integers(0, 256, obs["image"].shape, dtype=np.uint8)))]
    for x in xs:
        for y in ys:
            env.reset(seed=seed)
            sim.set_object_position(obj, np.array([x, y, sim.object_pos(obj)[2]]))
            moved = sim.observation()
            expert = make_policy("scripted", env=env)
            expert.reset(seed=0)
            first = []
            o = moved
            for _ in range(actions):
                a = expert.select_action(o)
                first.append(a[:3])
                o, *_ = env.step(a)
            rows.append(ProbeRow(f"{obj} at ({x:.2f}, {y:+.2f})",
                                 _mean_first_xyz(world_model, moved["image"], moved, n, steps, actions, gen, use_state),
                                 np.sum(first, axis=0)))
    env.close()
    return rows


def follow_slope(rows: list[ProbeRow]) -> tuple[float, float]:
    """How far the model's first (x, y) motion follows the expert's over the object grid: (slope, R²).

    The least-squares slope of the model's centred dx and dy on the expert's, pooled over both axes and every grid row
    (rows without an expert, the frame rows, are skipped), and the share of the model's variance it explains. 1 means
    the model moves as the expert does wherever the object is; 0 means its first action ignores where the object is.
    """
    grid = [r for r in rows if r.expert is not None]
    if len(grid) < 2:
        raise ValueError("follow_slope needs at least two grid rows with expert actions")
    model = np.array([r.model[:2] for r in grid], dtype=float)
    expert = np.array([r.expert[:2] for r in grid], dtype=float)
    m, e = (model - model.mean(0)).ravel(), (expert - expert.mean(0)).ravel()
    if not e.any():
        raise ValueError("follow_slope: the expert's first actions are the same at every grid position")
    slope = float(e @ m / (e @ e))
    resid = m - slope * e
    r2 = float(1 - resid @ resid / (m @ m)) if m.any() else 0.0
    return slope, r2


@dataclass
class TrajectoryRow:
    """One state of the expert's episode: its step and phase, the hand-to-object distance (m), and the first action
    (xyz m, gripper) of the expert (noise-free) and of the model (mean over samples)."""

    step: int
    phase: str
    distance: float
    expert: np.ndarray
    model: np.ndarray


PHASES = ("reach", "close", "carry", "release")


def expert_trajectory_probe(world_model: Any, task: str = "MoveNear", seed: int = 10003, obj: str | None = None,
                            n: int = 8, steps: int = 8, use_state: bool = True) -> list[TrajectoryRow]:
    """The model's first action from every state of the noise-free scripted expert's episode ``seed`` of ``task``.

    Phases, from the expert: ``reach`` until it first commands the gripper closed, ``close`` while it closes and the
    object is not yet held, ``carry`` while ``obj`` is held, ``release`` from when it opens the hand (or drops the
    object). ``obj`` defaults to the task's source object (MoveNear), else the coke can. The episode runs on the
    expert's actions only: the model never drives, so every row is a state the demonstrations cover.
    """
    import envs
    from policies import make_policy

    gen = torch.Generator().manual_seed(0)
    env = envs.make(task)
    obs, _ = env.reset(seed=seed)
    sim = env.unwrapped
    obj = obj or (getattr(sim.task, "params", None) or {}).get("source", "coke_can")
    expert = make_policy("scripted", env=env, noise=0.0)
    expert.reset(seed=0)
    rows, phase, limit = [], "reach", sim.task.step_limit
    for step in range(limit):
        action = expert.select_action(obs)
        held = sim.is_grasped(obj)
        if phase == "reach" and action[6] > 0:
            phase = "close"
        if phase == "close" and held:
            phase = "carry"
        if phase == "carry" and (action[6] < 0 or not held):
            phase = "release"
        first = _sampled_actions(world_model, obs["image"], obs, n, steps, gen, use_state)[:, 0]
        model = np.append(first[:, :3].mean(0), first[:, 6].mean())
        rows.append(TrajectoryRow(step, phase, float(np.linalg.norm(sim.arm.ee_pose()[0] - sim.object_pos(obj))),
                                  np.append(action[:3], action[6]), model))
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return rows


def trajectory_summary(rows: list[TrajectoryRow]) -> dict[str, dict[str, float]]:
    """Per phase: ``steps``; ``cosine``, the mean cosine between the model's and the expert's xyz (over steps
    where the expert moves more than 2 mm); ``gripper``, the share of steps whose gripper sign (close > 0, open
    < 0, zero counts as open) matches; ``distance``, the mean hand-to-object distance (m)."""
    out = {}
    for phase in PHASES:
        part = [r for r in rows if r.phase == phase]
        if not part:
            continue
        moving = [r for r in part if np.linalg.norm(r.expert[:3]) > 0.002]
        cos = [float(r.model[:3] @ r.expert[:3] / (np.linalg.norm(r.model[:3]) * np.linalg.norm(r.expert[:3]) + 1e-9))
               for r in moving]
        out[phase] = {"steps": len(part), "cosine": float(np.mean(cos)) if cos else float("nan"),
                      "gripper": float(np.mean([(r.model[3] > 0) == (r.expert[3] > 0) for r in part])),
                      "distance": float(np.mean([r.distance for r in part]))}
    return out


def localisation_error(preset: str = "tiny", steps: int = 100, batch: int = 16, lr: float = 1e-3, seed: int = 0,
                       **overrides: Any) -> float:
    """Train an action-only model for ``steps`` on: the target action's (x, y) is where a red square sits in the
    context frame; return the held-out MSE of that (x, y) predicted from pure noise (chance: 1/3)."""
    torch.manual_seed(seed)
    model = build_model(preset, future_frame_tokens=False, **overrides)
    cfg = model.cfg
    layout = TokenLayout(1, cfg.future_frames, cfg.grid, future_frame_tokens=False)
    h, w = cfg.frame_height, cfg.frame_width
    side = max(4, h // 10)

    def sample(b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        frames = torch.full((b, 1, 3, h, w), -0.5)
        xy = torch.rand(b, 2, generator=g) * 2 - 1
        rows, cols = ((xy[:, 1] + 1) / 2 * (h - side)).long(), ((xy[:, 0] + 1) / 2 * (w - side)).long()
        for i in range(b):
            frames[i, 0, 0, rows[i]:rows[i] + side, cols[i]:cols[i] + side] = 1.0
        target = torch.zeros(b, cfg.future_frames, cfg.action_dim)
        target[..., :2] = xy[:, None]
        return patchify(frames, cfg.patch), target

    def times(b: int, t_actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.ones(b, layout.num_frame_tokens), t_actions[:, None].expand(b, cfg.future_frames)], 1)

    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        frames, target = sample(batch, g)
        t = torch.rand(batch, generator=g)
        noisy = t[:, None, None] * target + (1 - t[:, None, None]) * torch.randn(target.shape, generator=g)
        loss = ((model(Tokens(frames, noisy), times(batch, t), layout).pred.actions - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    frames, target = sample(64, torch.Generator().manual_seed(seed + 99))
    with torch.no_grad():
        pred = model(Tokens(frames, torch.zeros_like(target)), times(64, torch.zeros(64)), layout).pred.actions
    return float(((pred[..., :2] - target[..., :2]) ** 2).mean())


def axis_chunks(high: np.ndarray, horizon: int) -> np.ndarray:
    """(6, horizon, 7) chunks that repeat one full-scale push of the hand along +x, -x, +y, -y, +z, -z (rotation
    and gripper zero), ``high`` being the env's action upper bounds."""
    out = np.zeros((6, horizon, 7), np.float32)
    for axis in range(3):
        for k, sign in enumerate((1.0, -1.0)):
            out[2 * axis + k, :, axis] = sign * float(high[axis])
    return out


@dataclass
class DynamicsProbe:
    """The :func:`dynamics_probe` of one state.

    Attributes:
        chunks: (n, T, 7) the executed / imagined chunks (RT-1 units).
        true: (n, T, h, w, 3) uint8, the simulator's futures at the model's resolution.
        imagined: (n, T, h, w, 3) uint8, the ``dynamics`` verb's futures, every chunk from the same noise.
        response: their :class:`~worldmodel.planner.ranking.ActionResponse`.
    """

    chunks: np.ndarray
    true: np.ndarray
    imagined: np.ndarray
    response: Any


def dynamics_probe(world_model: Any, task: str = "PickCan", seed: int = 10003, horizon: int = 4, steps: int = 8,
                   noise_seed: int = 0, chunks: np.ndarray | None = None) -> DynamicsProbe:
    """Execute and imagine the same chunks from the first state of one episode.

    Args:
        world_model: a :class:`worldmodel.WorldModel` with a ``dynamics`` verb.
        task, seed: the episode whose first state is probed.
        horizon: T, actions per chunk (and imagined frames).
        steps: sampler steps per imagined chunk.
        noise_seed: seed of the noise every chunk's imagination starts from (the same for all chunks).
        chunks: (n, T, 7) chunks to probe (default: :func:`axis_chunks`).
    """
    import envs
    from worldmodel.planner.oracle import SimulatorRollouts
    from worldmodel.planner.ranking import action_response

    env = envs.make(task)
    obs, _ = env.reset(seed=seed)
    acts = axis_chunks(env.action_space.high, horizon) if chunks is None else np.asarray(chunks, np.float32)
    sim = SimulatorRollouts(env)
    sim.begin()
    rendered = sim.rollout(acts).frames  # (n, T, H, W, 3) at the env's resolution
    env.close()

    def model_resolution(frames: np.ndarray) -> np.ndarray:
        return np.stack([world_model.decode_frames(world_model.encode_frames(f)) for f in frames])

    context = model_resolution(obs["image"][None, None])[0]  # (1, h, w, 3): imagined futures come out at h x w
    imagined = world_model.imagine(context, obs, acts, steps=steps, shared_noise=True,  # one draw for every chunk
                                   generator=torch.Generator().manual_seed(int(noise_seed)))
    true = model_resolution(rendered)
    return DynamicsProbe(acts, true, imagined, action_response(imagined, true))
