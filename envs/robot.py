"""The 7-DoF arm: RT-1 end-effector actions → joint position targets via damped-least-squares IK.

The arm is position-controlled and gravity-compensated (MJCF ``gravcomp``). One control step (1/3 s at 3 Hz) turns
an end-effector delta into a joint-space target with DLS IK on a scratch copy of the state, then ramps the joint
position actuators towards it over the physics sub-steps, so motion is smooth and the contact solver is never given
a jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
FINGER_OPEN = 0.045  # metres per finger; the opening between the pads is twice this
# Downward-pointing home configuration (the three pitches sum to pi).
HOME_QPOS = np.array([0.0, 0.35, 0.0, 1.95, 0.0, 0.84, 0.0])


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix → (4,) quaternion (w, x, y, z)."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(m, dtype=np.float64).reshape(9))
    return q


def euler_to_mat(rpy: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (radians, extrinsic x-y-z about the base axes) → (3, 3) rotation matrix."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) rotating ``current`` onto ``target`` (both (3, 3)), in the base frame."""
    q = mat_to_quat(target @ current.T)
    v = np.zeros(3)
    mujoco.mju_quat2Vel(v, q, 1.0)
    return v


@dataclass(frozen=True)
class ArmLimits:
    """Workspace box for the end-effector target (metres, base frame)."""

    low: tuple[float, float, float] = (0.12, -0.45, 0.005)
    high: tuple[float, float, float] = (0.72, 0.50, 0.55)


class Arm:
    """Kinematics and control of the arm inside one MuJoCo model.

    Args:
        model: the scene model (must contain the joints and actuators of ``tabletop.xml``).
        data: the live simulation state.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, limits: ArmLimits | None = None) -> None:
        self.model, self.data = model, data
        self.limits = limits or ArmLimits()
        self.qpos_idx = np.array([model.jnt_qposadr[model.joint(j).id] for j in ARM_JOINTS])
        self.dof_idx = np.array([model.jnt_dofadr[model.joint(j).id] for j in ARM_JOINTS])
        self.finger_qpos_idx = np.array([model.jnt_qposadr[model.joint(j).id] for j in FINGER_JOINTS])
        self.act_idx = np.array([model.actuator(j).id for j in ARM_JOINTS])
        self.finger_act_idx = np.array([model.actuator(j).id for j in FINGER_JOINTS])
        self.jnt_range = np.array([model.jnt_range[model.joint(j).id] for j in ARM_JOINTS])
        self.site_id = model.site("ee").id
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    # --- state -----------------------------------------------------------------------------------------------
    def ee_pose(self, data: mujoco.MjData | None = None) -> tuple[np.ndarray, np.ndarray]:
        """End-effector (between the fingertips) position (3,) and rotation matrix (3, 3) in the base frame."""
        d = self.data if data is None else data
        return d.site_xpos[self.site_id].copy(), d.site_xmat[self.site_id].reshape(3, 3).copy()

    def gripper_closedness(self) -> float:
        """Measured closedness in [0, 1] (0 = fully open, 1 = fingers touching)."""
        opening = float(np.mean(self.data.qpos[self.finger_qpos_idx]))
        return float(np.clip(1.0 - opening / FINGER_OPEN, 0.0, 1.0))

    def set_joint_positions(self, q: np.ndarray, closedness: float) -> None:
        """Teleport the arm (used at reset) and hold it there."""
        self.data.qpos[self.qpos_idx] = q
        self.data.qvel[self.dof_idx] = 0.0
        self.data.ctrl[self.act_idx] = q
        opening = FINGER_OPEN * (1.0 - closedness)
        self.data.qpos[self.finger_qpos_idx] = opening
        self.data.ctrl[self.finger_act_idx] = opening

    # --- inverse kinematics ----------------------------------------------------------------------------------
    def solve_ik(self, pos: np.ndarray, rot: np.ndarray, q_init: np.ndarray, iters: int = 30,
                 damping: float = 0.03, posture_gain: float = 0.02) -> np.ndarray:
        """Damped-least-squares IK for the end-effector site.

        Args:
            pos: (3,) target position, base frame.
            rot: (3, 3) target orientation.
            q_init: (7,) starting joint positions.

        Returns:
            (7,) joint positions within the joint limits.
        """
        d = self._scratch
        d.qpos[:] = self.data.qpos
        q = q_init.copy()
        for _ in range(iters):
            d.qpos[self.qpos_idx] = q
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            cur_pos, cur_rot = self.ee_pose(d)
            err = np.concatenate([pos - cur_pos, 0.5 * rotation_error(rot, cur_rot)])
            if np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3:
                break
            mujoco.mj_jacSite(self.model, d, self._jacp, self._jacr, self.site_id)
            jac = np.vstack([self._jacp[:, self.dof_idx], self._jacr[:, self.dof_idx]])  # (6, 7)
            jjt = jac @ jac.T + damping**2 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            # Null-space pull towards the home posture keeps the elbow up and away from the joint limits.
            null = np.eye(7) - np.linalg.pinv(jac) @ jac
            dq += null @ (posture_gain * (HOME_QPOS - q))
            q = np.clip(q + np.clip(dq, -0.3, 0.3), self.jnt_range[:, 0], self.jnt_range[:, 1])
        return q

    def clip_target(self, pos: np.ndarray) -> np.ndarray:
        """Clip an end-effector target position to the workspace box."""
        return np.clip(pos, self.limits.low, self.limits.high)

    def joint_target_for_delta(self, world_vector: np.ndarray, rotation_delta: np.ndarray) -> np.ndarray:
        """Joint target (7,) moving the end effector by an RT-1 delta from its current pose."""
        pos, rot = self.ee_pose()
        target_pos = self.clip_target(pos + world_vector)
        target_rot = euler_to_mat(rotation_delta) @ rot
        return self.solve_ik(target_pos, target_rot, self.data.qpos[self.qpos_idx].copy())
