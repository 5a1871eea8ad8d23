"""Scripted experts: one waypoint script per task, written as Python generators over privileged state.

Each script yields RT-1 actions; waypoints are recomputed from the live simulator state every step, so the expert
is closed-loop (an object that slips is re-approached, a failed grasp is retried).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from envs.robot import rotation_error
from envs.tabletop import ACTION_HIGH, TabletopEnv
from policies.scripted.configuration_scripted import ScriptedConfig

Action = np.ndarray
Script = Iterator[Action]
OPEN, CLOSE, HOLD = -1.0, 1.0, 0.0
DOWN = np.diag([-1.0, 1.0, -1.0])  # gripper pointing down, fingers opening along y
# Gripper pointing forward (+x), fingers opening along y: a pure pitch away from DOWN, natural for the arm.
FORWARD = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
CARRY_Z = 0.16
HANDLE = np.array([-0.05, 0.0, 0.045])  # vertical handle bar centre in the drawer frame (see tabletop.xml)
ROT_TOL = 0.06  # radians
OPEN_ENOUGH = 0.17  # drawer opening (m) that leaves room to drop the apple in
JOINT_MARGIN = 0.1  # radians: a planned wrist turn must keep the joints this far inside their limits


def _rz(yaw: float) -> np.ndarray:
    """(3, 3) rotation about the vertical axis."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class ScriptedPolicy:
    """Expert for every :mod:`envs.tasks` task.

    Args:
        env: the (possibly wrapped) tabletop env; privileged state is read from ``env.unwrapped``.
        config: :class:`ScriptedConfig`; keyword overrides (``noise=0.1``) are accepted too.
        seed: default seed of the noise RNG.
    """

    def __init__(self, env: gym.Env, config: ScriptedConfig | None = None, seed: int | None = None,
                 **overrides: Any) -> None:
        base = config or ScriptedConfig()
        self.config = ScriptedConfig(**{**base.__dict__, **overrides})
        self.env: TabletopEnv = env.unwrapped
        self._seed = seed
        self.rng = np.random.default_rng(seed)
        self._script: Script | None = None
        self._rot = DOWN  # commanded gripper orientation

    # --- policy interface ----------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)
        self._script = None
        self._rot = DOWN

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        del obs  # the expert reads privileged state
        if self._script is None:
            self._script = self._make_script()
        action = next(self._script, None)
        if action is None:  # script finished: hold still
            action = self._action(self._ee(), HOLD)
        if self.config.noise > 0:
            scale = self.config.noise * 0.25 * ACTION_HIGH[:6]
            action[:6] += self.rng.normal(0.0, 1.0, 6) * scale
        return np.clip(action, -ACTION_HIGH, ACTION_HIGH).astype(np.float32)

    # --- primitives ---------------------------------------------------------------------------------------------
    def _ee(self) -> np.ndarray:
        return self.env.arm.ee_pose()[0]

    def _action(self, target: np.ndarray, grip: float) -> Action:
        pos, rot = self.env.arm.ee_pose()
        delta = target - pos
        limit = 0.95 * ACTION_HIGH[0]
        delta *= min(1.0, limit / max(np.abs(delta).max(), 1e-9))
        rot_delta = np.clip(rotation_error(self._rot, rot), -ACTION_HIGH[3], ACTION_HIGH[3])
        return np.concatenate([delta, rot_delta, [grip]])

    def move(self, target: Callable[[], np.ndarray], grip: float, tol: float | None = None,
             until: Callable[[], bool] | None = None) -> Iterator[Action]:
        """Servo to a (live) target until within ``tol``, ``until()`` holds, or the phase times out."""
        tol = self.config.tolerance if tol is None else tol
        for _ in range(self.config.max_phase_steps):
            goal = target()
            rot_err = np.linalg.norm(rotation_error(self._rot, self.env.arm.ee_pose()[1]))
            reached = np.linalg.norm(goal - self._ee()) < tol and rot_err < ROT_TOL
            if (until is not None and until()) or (until is None and reached):
                return
            yield self._action(goal, grip)

    def wait(self, grip: float, steps: int) -> Iterator[Action]:
        """Stay put for a few steps while the gripper opens or closes."""
        here = self._ee()
        for _ in range(steps):
            yield self._action(here, grip)

    def pick(self, obj: str, attempts: int = 4) -> Iterator[Action]:
        """Grasp ``obj`` from above and lift it to the carry height, retrying failed grasps."""
        env = self.env
        for _ in range(attempts):
            self._rot = _rz(self._grasp_yaw(obj)) @ DOWN
            yield from self.move(lambda: self._above(obj, CARRY_Z), OPEN, tol=0.02)
            yield from self.move(lambda: self._grasp_point(obj), OPEN, tol=0.008)
            yield from self.wait(CLOSE, 2)
            if self.rng.random() < self.config.noise:  # deliberate retry for diverse demonstrations
                yield from self.wait(OPEN, 1)
                continue
            yield from self.move(lambda: self._ee() * [1, 1, 0] + [0, 0, CARRY_Z], CLOSE, tol=0.02)
            if env.is_grasped(obj):
                return
            yield from self.wait(OPEN, 1)

    def place_at(self, point: Callable[[], np.ndarray], release_z: float, carry_z: float = CARRY_Z,
                 beside: np.ndarray | None = None) -> Iterator[Action]:
        """Carry the held object above ``point`` (xy), lower it to ``release_z``, let go and back off.

        The point is fixed when the placement starts: chasing a target that the descent nudges would push it away.
        With ``beside`` (an xy position), the hand turns so that its long palm and open fingers lie across the
        line towards it, instead of reaching over a neighbouring object.
        """
        xy = point()[:2].copy()
        if beside is not None:
            d = np.asarray(beside)[:2] - xy
            self._rot = _rz(self._reachable_yaw(float(np.arctan2(d[1], d[0])), np.append(xy, release_z))) @ DOWN
        yield from self.move(lambda: self._ee() * [1, 1, 0] + [0, 0, carry_z], CLOSE, tol=0.02)
        yield from self.move(lambda: np.append(xy, carry_z), CLOSE, tol=0.015)
        yield from self.move(lambda: np.append(xy, release_z), CLOSE, tol=0.01)
        yield from self.wait(OPEN, 2)
        yield from self.move(lambda: self._ee() * [1, 1, 0] + [0, 0, carry_z], OPEN, tol=0.02)

    def place_in_drawer(self, drawer: str) -> Iterator[Action]:
        """Carry the held object over the open drawer's walls and drop it inside."""
        floor = self.env.drawer_pos(drawer)[2]
        yield from self.place_at(lambda: self._drop_point(drawer), floor + 0.07, carry_z=max(CARRY_Z, floor + 0.16))

    def grasp_handle(self, drawer: str) -> Iterator[Action]:
        """Reach in front of the handle pointing down, pitch the hand forward, approach the bar and close."""
        pre = self._handle(drawer) - [0.10, 0, 0]
        yaw = float(np.arctan2(pre[1], pre[0]))  # the arm's own heading there: the pitch is then a wrist pitch
        self._rot = _rz(yaw) @ DOWN
        yield from self.move(lambda: self._handle(drawer) - [0.10, 0, 0], OPEN, tol=0.02)
        self._rot = _rz(yaw) @ FORWARD
        yield from self.move(lambda: self._handle(drawer) - [0.10, 0, 0], OPEN, tol=0.015)
        yield from self.move(lambda: self._handle(drawer) + [0.005, 0, 0], OPEN, tol=0.008)
        yield from self.wait(CLOSE, 2)

    def release_handle(self) -> Iterator[Action]:
        """Let go of the handle and back away towards the robot."""
        yield from self.wait(OPEN, 1)
        back = self._ee() - [0.08, 0, 0]
        yield from self.move(lambda: back, OPEN, tol=0.02)

    def open_drawer(self, drawer: str, target_opening: float = 0.19) -> Iterator[Action]:
        """Grasp the handle and pull until the drawer is open."""
        env = self.env
        yield from self.grasp_handle(drawer)
        yield from self.move(lambda: self._handle(drawer) - [0.05, 0, 0], CLOSE,
                             until=lambda: env.drawer_opening(drawer) >= target_opening)
        yield from self.release_handle()

    def close_drawer(self, drawer: str) -> Iterator[Action]:
        """Grasp the handle and push the drawer home."""
        env = self.env
        yield from self.grasp_handle(drawer)
        yield from self.move(lambda: self._handle(drawer) + [0.05, 0, 0], CLOSE,
                             until=lambda: env.drawer_opening(drawer) <= 0.01)
        yield from self.release_handle()

    # --- geometry -------------------------------------------------------------------------------------------------
    def _above(self, obj: str, z: float) -> np.ndarray:
        return np.append(self.env.object_pos(obj)[:2], z)

    def _grasp_yaw(self, obj: str) -> float:
        """Heading of the hand for a top grasp of ``obj``.

        Boxes are grasped across their shorter side. Round objects can be grasped from any heading: pick the one
        whose open fingers stay farthest from the neighbouring objects.
        """
        env = self.env
        geom = env.model.geom(obj)
        if geom.type[0] == 6:  # mjGEOM_BOX
            xmat = env.data.xmat[env.model.body(obj).id].reshape(3, 3)
            yaw = float(np.arctan2(xmat[1, 0], xmat[0, 0]))
            if geom.size[0] < geom.size[1]:  # fingers must close along the object's shorter axis
                yaw += np.pi / 2
            return float((yaw + np.pi / 2) % np.pi - np.pi / 2)
        centre = env.object_pos(obj)[:2]
        others = [o for o in ("coke_can", "apple", "sponge", "orange", "blue_block") if o != obj]
        best, best_clearance = 0.0, -np.inf
        for yaw in np.linspace(-np.pi / 2, np.pi / 2, 12, endpoint=False):
            fingers = centre + np.outer([-1.0, 1.0], [-np.sin(yaw), np.cos(yaw)]) * 0.05  # (2, 2) tips, open
            clearance = min(np.linalg.norm(f - env.object_pos(o)[:2]) - self._radius(o)
                            for f in fingers for o in others)
            if clearance > best_clearance + 1e-3:
                best, best_clearance = float(yaw), clearance
        return best

    def _grasp_point(self, obj: str) -> np.ndarray:
        # Low enough for the pads to hold the object, high enough for the palm to clear its top.
        p = self.env.object_pos(obj)
        return np.array([p[0], p[1], max(p[2], self.env.object_top(obj) - 0.045, 0.03)])

    def _reachable_yaw(self, yaw: float, pos: np.ndarray) -> float:
        """Of the two hand yaws equivalent to ``yaw`` (the fingers are symmetric: yaw mod pi), the one reached by the
        smaller wrist turn, unless IK from the current joints says that it ends within ``JOINT_MARGIN`` of a joint
        limit at ``pos`` (the wrist would stall there, short of the orientation); then the turn the other way."""
        arm = self.env.arm
        rot = arm.ee_pose()[1]
        # The hand's yaw in the form _rz(yaw) @ DOWN, whose first column is -(cos yaw, sin yaw, 0).
        current = float(np.arctan2(-rot[1, 0], -rot[0, 0]))
        nearer = current + (yaw - current + np.pi / 2) % np.pi - np.pi / 2
        other = nearer - np.pi if nearer >= current else nearer + np.pi
        q = self.env.data.qpos[arm.qpos_idx].copy()
        low, high = arm.jnt_range[:, 0] + JOINT_MARGIN, arm.jnt_range[:, 1] - JOINT_MARGIN
        for candidate in (nearer, other):
            solution = arm.solve_ik(pos, _rz(candidate) @ DOWN, q, iters=100)
            if np.all((solution > low) & (solution < high)):
                return float(candidate)
        return float(nearer)

    def _handle(self, drawer: str) -> np.ndarray:
        return self.env.drawer_pos(drawer) + HANDLE

    def _drop_point(self, drawer: str) -> np.ndarray:
        # Inside the drawer, but in front of the handle of the drawer above (needs >= OPEN_ENOUGH opening).
        return self.env.drawer_pos(drawer) + [0.065, 0.0, 0.0]

    def _radius(self, obj: str) -> float:
        """Horizontal half-extent of an object (m)."""
        geom = self.env.model.geom(obj)
        return float(max(geom.size[0], geom.size[1]) if geom.type[0] == 6 else geom.size[0])

    def _near_point(self, src: str, tgt: str) -> np.ndarray:
        """A free spot just beside ``tgt``, preferring the side facing ``src``."""
        env = self.env
        t = env.object_pos(tgt)[:2]
        s = env.object_pos(src)[:2]
        others = [o for o in ("coke_can", "apple", "sponge", "orange", "blue_block") if o not in (src, tgt)]
        # The open fingers reach ~4.6 cm to either side of whatever they hold.
        held = max(self._radius(src), 0.046)
        dist = held + self._radius(tgt) + 0.012
        preferred = np.arctan2(*(s - t)[::-1])
        best, best_key = None, None
        for ang in np.linspace(-np.pi, np.pi, 24, endpoint=False):
            p = t + dist * np.array([np.cos(ang), np.sin(ang)])
            clearance = min(np.linalg.norm(p - env.object_pos(o)[:2]) - held - self._radius(o)
                            for o in others)
            inside = 0.26 <= p[0] <= 0.58 and -0.38 <= p[1] <= 0.06
            dev = abs((ang - preferred + np.pi) % (2 * np.pi) - np.pi)
            free = inside and clearance > 0.02
            key = (free, -dev if free else clearance)
            if best_key is None or key > best_key:
                best, best_key = p, key
        return best

    # --- task scripts -----------------------------------------------------------------------------------------------
    def _make_script(self) -> Script:
        task = self.env.task
        scripts = {
            "PickCan": self._pick_can,
            "MoveNear": self._move_near,
            "OpenDrawer": self._open,
            "CloseDrawer": self._close,
            "OpenDrawerPlaceApple": self._open_place,
            "StoreApple": self._store_apple,
        }
        if task.name not in scripts:
            raise ValueError(f"no scripted expert for task {task.name!r}")
        return scripts[task.name]()

    def _pick_can(self) -> Script:
        yield from self.pick("coke_can")

    def _move_near(self) -> Script:
        src, tgt = self.env.task.params["source"], self.env.task.params["target"]
        rest_z = self.env._rest_height[src]
        for _ in range(3):
            yield from self.pick(src)
            yield from self.place_at(lambda: self._near_point(src, tgt), max(rest_z, 0.03) + 0.01,
                                     beside=self.env.object_pos(tgt))

    def _open(self) -> Script:
        for _ in range(3):
            yield from self.open_drawer(self.env.task.params["drawer"])

    def _close(self) -> Script:
        for _ in range(3):
            yield from self.close_drawer(self.env.task.params["drawer"])

    def _open_wide(self, drawer: str) -> Script:
        """Open the drawer far enough to drop an object in, re-grasping the handle if it slipped."""
        for _ in range(3):
            if self.env.drawer_opening(drawer) >= OPEN_ENOUGH:
                return
            yield from self.open_drawer(drawer)

    def _open_place(self) -> Script:
        drawer = self.env.task.params["drawer"]
        yield from self._open_wide(drawer)
        for _ in range(3):
            yield from self.pick("apple")
            yield from self.place_in_drawer(drawer)

    def _store_apple(self) -> Script:
        drawer = self.env.task.params["drawer"]
        env = self.env
        yield from self._open_wide(drawer)
        for _ in range(3):
            if env.in_drawer("apple", drawer):
                break
            yield from self.pick("apple")
            yield from self.place_in_drawer(drawer)
        for _ in range(3):
            yield from self.close_drawer(drawer)
