"""The tabletop manipulation env: a 7-DoF arm, a three-drawer cabinet and five objects, RT-1 actions at 3 Hz.

## Action space: ``Box(7)``, float32, in RT-1 order and units

| index | field | unit | bounds |
|---|---|---|---|
| 0–2 | ``world_vector``: end-effector translation, robot base frame (x fwd, y left, z up) | metres per step | ±0.05 |
| 3–5 | ``rotation_delta``: roll, pitch, yaw about the base axes (R ← R_delta·R) | radians per step | ±0.25 |
| 6 | ``gripper_closedness_action``: relative change of the commanded closedness (+1 close, −1 open) | — | ±1 |

Values outside the bounds are clipped (RT-1 policies are trained on clipped actions too); NaN/inf values or a
shape other than (7,) raise ``ValueError``. The commanded closedness ``g`` is kept in [0, 1] and updated
``g ← clip(g + a₆, 0, 1)``. The end-effector target is clipped to the workspace box of :class:`envs.robot.ArmLimits`.

## Observation space: ``Dict``, mirroring RT-1's keys

| key | shape, dtype | meaning |
|---|---|---|
| ``image`` | (H, W, 3) uint8 | head camera, ``image_size=(H, W)``, default (256, 320) as RT-1 |
| ``natural_language_instruction`` | str | e.g. ``"pick coke can"`` |
| ``natural_language_embedding`` | (512,) float32 | :func:`envs.language.embed_instruction` of the instruction     |
| ``base_pose_tool_reached`` | (7,) float32 | end-effector position (m, base frame) + quaternion (x, y, z, w) |
| ``gripper_closed`` | (1,) float32 | measured closedness, 0 open … 1 closed |

## Episode

Control runs at 3 Hz: each ``step`` is 1/3 s of physics (167 sub-steps of 2 ms). Reward is 1.0 on the step the task
succeeds (then ``terminated=True``), else 0.0. The step limit (``TimeLimit``) is the task's. Unstable physics
(MuJoCo warnings, non-finite state) ends the episode with ``truncated=True`` and ``info["truncation_reason"]``.
``info``: ``is_success``, ``stages_completed``, ``num_stages``, ``stage_names``, ``task``, ``instruction``,
``progress`` (below), ``step`` (control steps since reset).

## Dense progress: ``info["progress"]``

A float in ``[0, num_stages]`` read from the true simulator state: ``stages_completed + f``, where ``f`` in [0, 1)
is how far the current (first unfinished) stage has come (capped at 0.99 until the stage's predicate holds; 0 once
the task has succeeded, so ``progress == num_stages`` exactly at success). Completing a stage therefore never lowers
it. Within-stage fractions use ``close(d, s) = clip(1 - d / s, 0, 1)`` on distances ``d`` (metres), with the
hand point ``ee`` (between the fingertips) and these scales: reach 0.5 m, carry 0.3 m, into-drawer 0.6 m.

- PickCan, grasp: ``0.8·R + 0.2·R·g``, ``R = close(|ee − can|, 0.5)``, ``g`` the commanded closedness.
- PickCan, lift: ``clip(h / 0.05, 0, 1)`` while the can is grasped (``h`` its height above rest), else 0.
- MoveNear, move: ``0.3·max(R, C) + 0.6·C + 0.1·C·L``, ``R = close(|ee − source|, 0.5)``,
  ``C = close(d_xy − 0.11, 0.3)`` (``d_xy`` the source–target centre distance in the table plane, so ``C = 1`` once
  near), ``L = 1 − clip(h / 0.1, 0, 1)`` (``h`` the source's height above rest).
- OpenDrawer, and the ``open`` stage of OpenDrawerPlaceApple / StoreApple: ``0.3·H + 0.7·clip(opening / 0.15, 0, 1)``,
  ``H = close(|ee − handle|, 0.5)`` (the handle bar's centre).
- CloseDrawer, close: ``0.3·H + 0.7·clip((0.20 − opening) / (0.20 − 0.03), 0, 1)``.
- OpenDrawerPlaceApple / StoreApple, place: ``0.3·R + 0.7·close(b, 0.6)``, ``R = close(|ee − apple|, 0.5)``, ``b``
  the distance of the apple's centre to the drawer's inside box (the one ``in_drawer`` tests; 0 inside).
- StoreApple, close: as CloseDrawer while the apple is in the drawer, else 0.

## Snapshots: :meth:`TabletopEnv.get_state` / :meth:`TabletopEnv.set_state`

:meth:`~TabletopEnv.get_state` returns a :class:`TabletopState` (numpy arrays and plain values, ``copy.deepcopy``-
and pickle-able) holding everything the next ``step`` depends on: MuJoCo's full integration state (time, qpos, qvel,
act, ctrl, warm start, applied forces, mocap, …), the gripper command, the stage count, the task's per-episode
parameters, the step count and the env RNG. :meth:`~TabletopEnv.set_state` restores it into the same env or into
another instance of the same task; stepping on from there is bit-identical (observations, images, rewards, infos).
:func:`envs.get_state` / :func:`envs.set_state` do the same on a ``gym.make`` env and also restore the
``TimeLimit`` wrapper's step count. Change the state between steps through the env's setters
(``set_object_position``, ``set_drawer_opening``), which recompute the derived quantities: a snapshot taken after
raw edits of ``env.data`` is refused by ``set_state`` (``ValueError``), since its positions and contacts would be
those before the edit.

## Versions

v0: first release. Later additions that leave observations, rewards and dynamics unchanged: ``info["progress"]``,
``info["step"]``, snapshots.
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.robot import HOME_QPOS, Arm
from envs.tasks import Task

ASSET = Path(__file__).resolve().parent / "assets" / "tabletop.xml"
CONTROL_HZ = 3
ACTION_LOW = np.array([-0.05] * 3 + [-0.25] * 3 + [-1.0], dtype=np.float32)
ACTION_HIGH = -ACTION_LOW
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " -,."
# The arm starts each episode at START_POSITION (end effector, metres, base frame) plus a uniform offset of at most
# ``start_jitter`` per axis; the default keeps every start within 3 cm of the same pose. Wider jitter (data
# collection, ``worldmodel data sim start_jitter=...``) stops the pose from telling a policy where the arm is going.
START_POSITION = (0.30, -0.05, 0.28)
START_JITTER = (0.03, 0.03, 0.03)
MAX_START_JITTER = 0.15  # the widest allowed; the experts were checked at (0.15, 0.15, 0.06) (docs/experiments.md)
_RAMP_FRACTION = 0.6  # share of the control period over which joint targets are ramped
# Which entry of a geom's size is its half height: sphere radius, cylinder half length, box z half size.
_HALF_HEIGHT_INDEX = {mujoco.mjtGeom.mjGEOM_SPHERE: 0, mujoco.mjtGeom.mjGEOM_CYLINDER: 1, mujoco.mjtGeom.mjGEOM_BOX: 2}
_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL)
_STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION  # everything mj_step reads: it is a deterministic function of it
PROGRESS_FRACTION_CAP = 0.99  # a stage's fraction stays below 1 until its predicate holds


@dataclass
class TabletopState:
    """A snapshot of a :class:`TabletopEnv` (see :meth:`TabletopEnv.get_state`).

    MuJoCo computes positions, contacts and the other derived quantities at the start of ``mj_step``, so after a
    control step they describe the state one physics sub-step before ``physics``; ``pre_physics`` is that earlier
    integration state, and restoring re-runs the one sub-step to rebuild them exactly. It is ``None`` when the
    derived quantities were last computed from ``physics`` itself (after ``mj_forward``).
    """

    task: str
    physics: np.ndarray
    pre_physics: np.ndarray | None
    warnings: np.ndarray  # (mjNWARNING, 2) int: MuJoCo's warning counters (number, lastinfo)
    grip_cmd: float
    stages_done: int
    step_count: int
    task_params: dict
    rest_height: dict[str, float]
    instruction: str
    embedding: np.ndarray
    rng_state: dict
    rng_seed: int | None = None

    def copy(self) -> TabletopState:
        return copy.deepcopy(self)


class TabletopEnv(gym.Env):
    """Gymnasium env for one :class:`envs.tasks.Task` (see the module docstring for the spaces)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task: Task, image_size: tuple[int, int] = (256, 320), render_mode: str | None = None,
                 camera: str = "head", start_jitter: float | tuple[float, float, float] = START_JITTER) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        jitter = np.broadcast_to(np.asarray(start_jitter, dtype=np.float64), (3,)).copy()
        if not (np.all(np.isfinite(jitter)) and np.all(jitter >= 0) and np.all(jitter <= MAX_START_JITTER)):
            raise ValueError(
                f"start_jitter must be one or three numbers in [0, {MAX_START_JITTER}] m, got {start_jitter}")
        self.start_jitter = jitter
        height, width = (int(v) for v in image_size)
        if height < 8 or width < 8:
            raise ValueError(f"image_size must be at least (8, 8), got {image_size}")
        self.task, self.render_mode, self.camera = task, render_mode, camera
        self.image_size = (height, width)
        self.model = mujoco.MjModel.from_xml_path(str(ASSET))
        # A framebuffer of exactly the image size: software (EGL/llvmpipe) rendering cost scales with it.
        self.model.vis.global_.offheight, self.model.vis.global_.offwidth = height, width
        self.data = mujoco.MjData(self.model)
        self.arm = Arm(self.model, self.data)
        self.n_substeps = round(1.0 / (CONTROL_HZ * self.model.opt.timestep))
        self._renderer: mujoco.Renderer | None = None
        self._finger_geoms = {self.model.geom("finger_left").id, self.model.geom("finger_right").id}
        self._rest_height: dict[str, float] = {}
        self._grip_cmd = 0.0
        self._stages_done = 0
        self._step_count = 0
        # Integration state one sub-step before the current one, or None when the derived quantities are current.
        self._pre_physics: np.ndarray | None = None
        self.instruction = ""
        self._embedding = np.zeros(512, dtype=np.float32)

        self.action_space = spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
            "natural_language_instruction": spaces.Text(max_length=128, charset=INSTRUCTION_CHARSET),
            # Unit-norm sentence embedding, so every component lies in [-1, 1].
            "natural_language_embedding": spaces.Box(-1.0, 1.0, (512,), dtype=np.float32),
            "base_pose_tool_reached": spaces.Box(np.array([-2.0] * 3 + [-1.0] * 4, dtype=np.float32),
                                                 np.array([2.0] * 3 + [1.0] * 4, dtype=np.float32), dtype=np.float32),
            "gripper_closed": spaces.Box(0.0, 1.0, (1,), dtype=np.float32),
        })

    # --- state helpers used by tasks and scripted experts ------------------------------------------------------
    def _joint_qpos(self, name: str) -> int:
        return int(self.model.jnt_qposadr[self.model.joint(name).id])

    def set_object_pose(self, name: str, xy: np.ndarray, yaw: float = 0.0) -> None:
        """Put an object upright on the table at ``xy`` with heading ``yaw``."""
        adr = self._joint_qpos(name)
        geom = self.model.geom(name)
        half_height = geom.size[_HALF_HEIGHT_INDEX[int(geom.type[0])]]
        self.data.qpos[adr:adr + 3] = (xy[0], xy[1], half_height + 0.001)
        self.data.qpos[adr + 3:adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self._rest_height[name] = float(half_height)

    def set_object_position(self, name: str, pos: np.ndarray) -> None:
        """Teleport an object (keeping its orientation) and update the derived quantities."""
        adr = self._joint_qpos(name)
        self.data.qpos[adr:adr + 3] = pos
        self.data.qvel[self.model.jnt_dofadr[self.model.joint(name).id]:][:6] = 0.0
        self._forward()

    def object_pos(self, name: str) -> np.ndarray:
        """(3,) world position of an object's body."""
        return self.data.xpos[self.model.body(name).id].copy()

    def object_top(self, name: str) -> float:
        """Height (m) of the top of an upright object."""
        return float(self.object_pos(name)[2] + self._rest_height[name])

    def height_above_rest(self, name: str) -> float:
        """How far (m) an object is above its resting height on the table."""
        return float(self.object_pos(name)[2] - self._rest_height[name])

    def drawer_opening(self, drawer: str) -> float:
        """Opening of ``top`` / ``middle`` / ``bottom`` drawer in metres (0 = closed)."""
        return float(self.data.qpos[self._joint_qpos(f"drawer_{drawer}")])

    def set_drawer_opening(self, drawer: str, opening: float) -> None:
        """Set a drawer's opening in metres."""
        self.data.qpos[self._joint_qpos(f"drawer_{drawer}")] = opening
        self._forward()

    def drawer_pos(self, drawer: str) -> np.ndarray:
        """(3,) world position of the drawer's frame (front-bottom-centre of the drawer box)."""
        return self.data.xpos[self.model.body(f"drawer_{drawer}").id].copy()

    def in_drawer(self, name: str, drawer: str) -> bool:
        """Whether the object's centre is inside the drawer's box."""
        local = self.object_pos(name) - self.drawer_pos(drawer)
        return bool(0.01 < local[0] < 0.25 and abs(local[1]) < 0.12 and 0.0 < local[2] < 0.08)

    def _contacts(self, name: str) -> set[int]:
        body = self.model.body(name).id
        touching = set()
        for c in self.data.contact[: self.data.ncon]:
            g1, g2 = int(c.geom1), int(c.geom2)
            if self.model.geom_bodyid[g1] == body:
                touching.add(g2)
            elif self.model.geom_bodyid[g2] == body:
                touching.add(g1)
        return touching

    def touches_gripper(self, name: str) -> bool:
        """Whether either finger touches the object."""
        return bool(self._contacts(name) & self._finger_geoms)

    def is_grasped(self, name: str) -> bool:
        """Whether both fingers touch the object and the gripper is commanded closed."""
        return self._finger_geoms <= self._contacts(name) and self._grip_cmd > 0.5

    # --- gymnasium API ----------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.instruction = self.task.setup(self)
        # Start from a jittered pose above the table, gripper open and pointing down.
        start = np.asarray(START_POSITION) + self.np_random.uniform(-self.start_jitter, self.start_jitter, size=3)
        q = self.arm.solve_ik(start, np.diag([-1.0, 1.0, -1.0]), HOME_QPOS, iters=100)
        self._grip_cmd = 0.0
        self.arm.set_joint_positions(q, 0.0)
        mujoco.mj_forward(self.model, self.data)
        for i in range(50):  # let the objects settle on the table
            if i == 49:
                self._pre_physics = self._physics_state()
            mujoco.mj_step(self.model, self.data)
        self._stages_done = 0
        self._step_count = 0
        self._advance_stages()
        from envs.language import embed_instruction

        self._embedding = np.asarray(embed_instruction(self.instruction), dtype=np.float32)
        return self._obs(), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise ValueError(f"action must have shape (7,), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or inf: {action.tolist()}")
        action = np.clip(action, ACTION_LOW, ACTION_HIGH)
        self._grip_cmd = float(np.clip(self._grip_cmd + action[6], 0.0, 1.0))
        q_target = self.arm.joint_target_for_delta(action[:3], action[3:6])
        q_start = self.data.ctrl[self.arm.act_idx].copy()
        finger_target = (1.0 - self._grip_cmd) * 0.045
        self.data.ctrl[self.arm.finger_act_idx] = finger_target
        ramp = max(1, int(self.n_substeps * _RAMP_FRACTION))
        warnings_before = sum(int(self.data.warning[w].number) for w in _WARNINGS)
        for i in range(self.n_substeps):
            alpha = min(1.0, (i + 1) / ramp)
            self.data.ctrl[self.arm.act_idx] = (1 - alpha) * q_start + alpha * q_target
            if i == self.n_substeps - 1:
                self._pre_physics = self._physics_state()
            mujoco.mj_step(self.model, self.data)
        self._step_count += 1
        warnings_after = sum(int(self.data.warning[w].number) for w in _WARNINGS)

        unstable = None
        if warnings_after > warnings_before:
            unstable = "unstable physics: MuJoCo reported a bad qacc/qpos/qvel warning"
        elif not (np.all(np.isfinite(self.data.qpos)) and np.all(np.isfinite(self.data.qvel))):
            unstable = "unstable physics: non-finite simulator state"
        success_before = self._stages_done == len(self.task.stage_names)
        if unstable is None:
            self._advance_stages()
        success = self._stages_done == len(self.task.stage_names)
        info = self._info()
        truncated = unstable is not None
        if truncated:
            info["truncation_reason"] = unstable
            mujoco.mj_resetData(self.model, self.data)  # keep the returned observation finite
            self._forward()
        reward = 1.0 if success and not success_before else 0.0
        return self._obs(), reward, bool(success), truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return self._render_image()
        return None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- snapshots -------------------------------------------------------------------------------------------
    def get_state(self) -> TabletopState:
        """Snapshot everything the next :meth:`step` depends on (see :class:`TabletopState`)."""
        warnings = np.array([[w.number, w.lastinfo] for w in self.data.warning], dtype=np.int64)
        return TabletopState(
            task=self.task.name,
            physics=self._physics_state(),
            pre_physics=None if self._pre_physics is None else self._pre_physics.copy(),
            warnings=warnings,
            grip_cmd=float(self._grip_cmd),
            stages_done=int(self._stages_done),
            step_count=int(self._step_count),
            task_params=copy.deepcopy(self.task.params),
            rest_height=dict(self._rest_height),
            instruction=self.instruction,
            embedding=self._embedding.copy(),
            rng_state=copy.deepcopy(self.np_random.bit_generator.state),
            rng_seed=getattr(self, "_np_random_seed", None),
        )

    def set_state(self, state: TabletopState) -> None:
        """Restore a snapshot from :meth:`get_state` of this env or of another env of the same task.

        Raises:
            ValueError: the snapshot is of another task, or does not fit this model.
        """
        if state.task != self.task.name:
            raise ValueError(f"snapshot of task {state.task!r} cannot be restored into a {self.task.name!r} env")
        size = mujoco.mj_stateSize(self.model, _STATE_SPEC)
        if state.physics.shape != (size,):
            raise ValueError(f"snapshot physics state has shape {state.physics.shape}, this model needs ({size},)")
        if state.pre_physics is None:
            mujoco.mj_setState(self.model, self.data, state.physics, _STATE_SPEC)
            mujoco.mj_forward(self.model, self.data)
            self._pre_physics = None
        else:
            # Re-run the last sub-step so that positions, contacts, etc. are exactly as they were.
            mujoco.mj_setState(self.model, self.data, state.pre_physics, _STATE_SPEC)
            mujoco.mj_step(self.model, self.data)
            if not np.array_equal(self._physics_state(), state.physics):
                raise ValueError("snapshot does not reproduce on this model (was it taken from another scene?)")
            self._pre_physics = state.pre_physics.copy()
        for w, (number, lastinfo) in zip(self.data.warning, state.warnings, strict=True):
            w.number, w.lastinfo = int(number), int(lastinfo)
        self._grip_cmd = float(state.grip_cmd)
        self._stages_done = int(state.stages_done)
        self._step_count = int(state.step_count)
        self.task.params = copy.deepcopy(state.task_params)
        self._rest_height = dict(state.rest_height)
        self.instruction = state.instruction
        self._embedding = state.embedding.copy()
        self.np_random.bit_generator.state = copy.deepcopy(state.rng_state)
        if state.rng_seed is not None or hasattr(self, "_np_random_seed"):
            self._np_random_seed = state.rng_seed

    def observation(self) -> dict[str, Any]:
        """The observation of the current state (as :meth:`step` would return it), e.g. after :meth:`set_state`."""
        return self._obs()

    def info(self) -> dict[str, Any]:
        """The ``info`` dict of the current state."""
        return self._info()

    def progress(self) -> float:
        """Dense task progress in [0, num_stages] (see the module docstring)."""
        n = len(self.task.stage_names)
        if self._stages_done >= n:
            return float(n)
        frac = float(self.task.stage_fraction(self, self._stages_done))
        return self._stages_done + min(max(frac, 0.0), PROGRESS_FRACTION_CAP)

    # --- internals -------------------------------------------------------------------------------------------
    def _physics_state(self) -> np.ndarray:
        state = np.empty(mujoco.mj_stateSize(self.model, _STATE_SPEC))
        mujoco.mj_getState(self.model, self.data, state, _STATE_SPEC)
        return state

    def _forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)
        self._pre_physics = None

    def _advance_stages(self) -> None:
        predicates = self.task.predicates()
        while self._stages_done < len(predicates) and predicates[self._stages_done](self):
            self._stages_done += 1

    def _render_image(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self.image_size)
        self._renderer.update_scene(self.data, camera=self.camera)
        return self._renderer.render().copy()

    def _obs(self) -> dict[str, Any]:
        pos, rot = self.arm.ee_pose()
        wxyz = np.zeros(4)
        mujoco.mju_mat2Quat(wxyz, rot.reshape(9))
        pose = np.concatenate([pos, wxyz[1:], wxyz[:1]]).astype(np.float32)
        return {
            "image": self._render_image(),
            "natural_language_instruction": self.instruction,
            "natural_language_embedding": self._embedding.copy(),
            "base_pose_tool_reached": pose,
            "gripper_closed": np.array([self.arm.gripper_closedness()], dtype=np.float32),
        }

    def _info(self) -> dict[str, Any]:
        n = len(self.task.stage_names)
        return {
            "is_success": self._stages_done == n,
            "stages_completed": self._stages_done,
            "num_stages": n,
            "stage_names": list(self.task.stage_names),
            "task": self.task.name,
            "instruction": self.instruction,
            "progress": self.progress(),
            "step": self._step_count,
        }


__all__ = ["TabletopEnv", "TabletopState", "ACTION_LOW", "ACTION_HIGH"]
