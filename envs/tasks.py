"""Task definitions: what the scene looks like at reset, the instruction, and the stage predicates.

Each task is a small object the env calls into; every random draw comes from the env's ``np_random`` so a seed
fixes the episode. Stages are completed in order and stay completed (a later stage only counts once the earlier
ones have); the episode succeeds, and terminates, when the last stage completes. :meth:`Task.stage_fraction` gives
the dense within-stage progress behind ``info["progress"]`` (its definitions are tabled in :mod:`envs.tabletop`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from envs.tabletop import TabletopEnv

OBJECTS = ("coke_can", "apple", "sponge", "orange", "blue_block")
OBJECT_WORDS = {"coke_can": "coke can", "apple": "apple", "sponge": "sponge", "orange": "orange",
                "blue_block": "blue block"}
MOVABLE = ("coke_can", "apple", "sponge", "orange")  # graspable sources and targets for MoveNear
DRAWERS = ("top", "middle", "bottom")
# Object spawn region on the table (metres, base frame), left of the cabinet.
SPAWN_LOW, SPAWN_HIGH = np.array([0.30, -0.30]), np.array([0.54, 0.0])
MIN_SEPARATION = 0.095
OPEN_THRESHOLD = 0.15  # drawer opening (m) that counts as open
CLOSED_THRESHOLD = 0.03  # opening (m) that counts as closed
NEAR_DISTANCE = 0.11  # centre-to-centre xy distance (m) that counts as "near"
LIFT_HEIGHT = 0.05  # metres above the resting height that counts as lifted
HANDLE_OFFSET = np.array([-0.05, 0.0, 0.045])  # centre of a drawer's handle bar in the drawer frame (tabletop.xml)
# The inside of a drawer in the drawer frame, as :meth:`envs.tabletop.TabletopEnv.in_drawer` tests it.
DRAWER_INSIDE_LOW, DRAWER_INSIDE_HIGH = np.array([0.01, -0.12, 0.0]), np.array([0.25, 0.12, 0.08])
CLOSE_START = 0.20  # widest opening a CloseDrawer episode starts from; the closing fraction is measured from it
# Distance scales (m) of the dense progress terms: a term is 1 at distance 0 and 0 from this distance on.
REACH_SCALE, CARRY_SCALE, INTO_DRAWER_SCALE = 0.5, 0.3, 0.6

Predicate = Callable[["TabletopEnv"], bool]


def closeness(dist: float, scale: float) -> float:
    """``clip(1 - dist / scale, 0, 1)``: 1 at distance 0, falling linearly to 0 at ``scale``."""
    return float(np.clip(1.0 - dist / scale, 0.0, 1.0))


def reach(env: TabletopEnv, point: np.ndarray) -> float:
    """Closeness of the hand (the point between the fingertips) to ``point``."""
    return closeness(float(np.linalg.norm(env.arm.ee_pose()[0] - point)), REACH_SCALE)


@dataclass
class Task:
    """One task family. Subclasses set the scene in :meth:`setup` and list their stage predicates."""

    name: str = ""
    step_limit: int = 80
    stage_names: tuple[str, ...] = ()
    # Per-episode choices (drawer, objects), filled by ``setup`` from the env's RNG.
    params: dict = field(default_factory=dict)

    def setup(self, env: TabletopEnv) -> str:
        """Place objects and drawers for a new episode; returns the instruction."""
        raise NotImplementedError

    def predicates(self) -> tuple[Predicate, ...]:
        """One predicate per stage, evaluated on the current simulator state."""
        raise NotImplementedError

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        """How far stage ``stage`` (the first unfinished one) has come, in [0, 1], from the true state."""
        raise NotImplementedError


def sample_object_positions(env: TabletopEnv) -> dict[str, np.ndarray]:
    """Non-overlapping (x, y) positions for every object, by rejection sampling from the env RNG."""
    rng = env.np_random
    for _ in range(1000):
        xy = rng.uniform(SPAWN_LOW, SPAWN_HIGH, size=(len(OBJECTS), 2))
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(OBJECTS))
        if dist.min() >= MIN_SEPARATION:
            return dict(zip(OBJECTS, xy, strict=True))
    raise RuntimeError("could not place the objects without overlap")  # pragma: no cover


def place_all_objects(env: TabletopEnv) -> dict[str, np.ndarray]:
    """Randomise every object's pose on the table."""
    positions = sample_object_positions(env)
    for name, xy in positions.items():
        env.set_object_pose(name, xy, yaw=float(env.np_random.uniform(-np.pi, np.pi)))
    return positions


@dataclass
class PickCan(Task):
    """Grasp the coke can and lift it 5 cm."""

    name: str = "PickCan"
    step_limit: int = 80
    stage_names: tuple[str, ...] = ("grasp", "lift")

    def setup(self, env: TabletopEnv) -> str:
        place_all_objects(env)
        return "pick coke can"

    def predicates(self) -> tuple[Predicate, ...]:
        return (lambda e: e.is_grasped("coke_can"),
                lambda e: e.is_grasped("coke_can") and e.height_above_rest("coke_can") > LIFT_HEIGHT)

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        if stage == 0:  # reach the can, then close the hand on it
            r = reach(env, env.object_pos("coke_can"))
            return 0.8 * r + 0.2 * r * env._grip_cmd
        if not env.is_grasped("coke_can"):
            return 0.0
        return float(np.clip(env.height_above_rest("coke_can") / LIFT_HEIGHT, 0.0, 1.0))


@dataclass
class MoveNear(Task):
    """Move one object next to another (released, within 11 cm centre to centre)."""

    name: str = "MoveNear"
    step_limit: int = 80
    stage_names: tuple[str, ...] = ("move",)

    def setup(self, env: TabletopEnv) -> str:
        rng = env.np_random
        while True:
            pos = place_all_objects(env)
            src, tgt = (str(o) for o in rng.choice(MOVABLE, size=2, replace=False))
            if np.linalg.norm(pos[src] - pos[tgt]) >= 0.18:
                break
        self.params = {"source": src, "target": tgt}
        return f"move {OBJECT_WORDS[src]} near {OBJECT_WORDS[tgt]}"

    def predicates(self) -> tuple[Predicate, ...]:
        def moved(e: TabletopEnv) -> bool:
            src, tgt = self.params["source"], self.params["target"]
            dist = np.linalg.norm(e.object_pos(src)[:2] - e.object_pos(tgt)[:2])
            return bool(dist < NEAR_DISTANCE and not e.touches_gripper(src) and e.height_above_rest(src) < 0.02)
        return (moved,)

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        src, tgt = self.params["source"], self.params["target"]
        r = reach(env, env.object_pos(src))
        dist = float(np.linalg.norm(env.object_pos(src)[:2] - env.object_pos(tgt)[:2]))
        c = closeness(max(dist - NEAR_DISTANCE, 0.0), CARRY_SCALE)
        low = 1.0 - float(np.clip(env.height_above_rest(src) / 0.1, 0.0, 1.0))
        return 0.3 * max(r, c) + 0.6 * c + 0.1 * c * low


@dataclass
class DrawerTask(Task):
    """Base for the drawer tasks: the drawer (top / middle / bottom) is drawn from the seed."""

    def choose_drawer(self, env: TabletopEnv) -> str:
        drawer = str(env.np_random.choice(DRAWERS))
        self.params = {"drawer": drawer}
        return drawer

    def opened(self, e: TabletopEnv) -> bool:
        return e.drawer_opening(self.params["drawer"]) >= OPEN_THRESHOLD

    def closed(self, e: TabletopEnv) -> bool:
        return e.drawer_opening(self.params["drawer"]) <= CLOSED_THRESHOLD

    def apple_placed(self, e: TabletopEnv) -> bool:
        return e.in_drawer("apple", self.params["drawer"]) and not e.touches_gripper("apple")

    # --- dense progress terms ------------------------------------------------------------------------------------
    def handle_reach(self, e: TabletopEnv) -> float:
        return reach(e, e.drawer_pos(self.params["drawer"]) + HANDLE_OFFSET)

    def opening_fraction(self, e: TabletopEnv) -> float:
        """Reach the handle, then pull the drawer out to the open threshold."""
        opened = np.clip(e.drawer_opening(self.params["drawer"]) / OPEN_THRESHOLD, 0.0, 1.0)
        return 0.3 * self.handle_reach(e) + 0.7 * float(opened)

    def closing_fraction(self, e: TabletopEnv) -> float:
        """Reach the handle, then push the drawer in from :data:`CLOSE_START` to the closed threshold."""
        pushed = (CLOSE_START - e.drawer_opening(self.params["drawer"])) / (CLOSE_START - CLOSED_THRESHOLD)
        return 0.3 * self.handle_reach(e) + 0.7 * float(np.clip(pushed, 0.0, 1.0))

    def placing_fraction(self, e: TabletopEnv) -> float:
        """Reach the apple, then bring it into the drawer (distance of its centre to the drawer's inside box)."""
        local = e.object_pos("apple") - e.drawer_pos(self.params["drawer"])
        outside = float(np.linalg.norm(np.maximum(np.maximum(DRAWER_INSIDE_LOW - local, local - DRAWER_INSIDE_HIGH),
                                                  0.0)))
        return 0.3 * reach(e, e.object_pos("apple")) + 0.7 * closeness(outside, INTO_DRAWER_SCALE)


@dataclass
class OpenDrawer(DrawerTask):
    """Pull a closed drawer open by at least 15 cm."""

    name: str = "OpenDrawer"
    step_limit: int = 113
    stage_names: tuple[str, ...] = ("open",)

    def setup(self, env: TabletopEnv) -> str:
        drawer = self.choose_drawer(env)
        place_all_objects(env)
        return f"open {drawer} drawer"

    def predicates(self) -> tuple[Predicate, ...]:
        return (self.opened,)

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        return self.opening_fraction(env)


@dataclass
class CloseDrawer(DrawerTask):
    """Push an open drawer (16–20 cm) closed (≤ 3 cm)."""

    name: str = "CloseDrawer"
    step_limit: int = 113
    stage_names: tuple[str, ...] = ("close",)

    def setup(self, env: TabletopEnv) -> str:
        drawer = self.choose_drawer(env)
        place_all_objects(env)
        env.set_drawer_opening(drawer, float(env.np_random.uniform(0.16, 0.20)))
        return f"close {drawer} drawer"

    def predicates(self) -> tuple[Predicate, ...]:
        return (self.closed,)

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        return self.closing_fraction(env)


@dataclass
class OpenDrawerPlaceApple(DrawerTask):
    """Open a drawer, then put the apple into it."""

    name: str = "OpenDrawerPlaceApple"
    step_limit: int = 200
    stage_names: tuple[str, ...] = ("open", "place")

    def setup(self, env: TabletopEnv) -> str:
        drawer = self.choose_drawer(env)
        place_all_objects(env)
        return f"open {drawer} drawer and place apple into {drawer} drawer"

    def predicates(self) -> tuple[Predicate, ...]:
        return (self.opened, self.apple_placed)

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        return self.opening_fraction(env) if stage == 0 else self.placing_fraction(env)


@dataclass
class StoreApple(DrawerTask):
    """Open a drawer, put the apple in, and close it again with the apple inside."""

    name: str = "StoreApple"
    step_limit: int = 300
    stage_names: tuple[str, ...] = ("open", "place", "close")

    def setup(self, env: TabletopEnv) -> str:
        drawer = self.choose_drawer(env)
        place_all_objects(env)
        return f"put the apple in the {drawer} drawer and close it"

    def predicates(self) -> tuple[Predicate, ...]:
        def stored(e: TabletopEnv) -> bool:
            return self.closed(e) and e.in_drawer("apple", self.params["drawer"])

        return (self.opened, self.apple_placed, stored)

    def stage_fraction(self, env: TabletopEnv, stage: int) -> float:
        if stage == 0:
            return self.opening_fraction(env)
        if stage == 1:
            return self.placing_fraction(env)
        # The drawer can only be closed to success with the apple inside.
        return self.closing_fraction(env) if env.in_drawer("apple", self.params["drawer"]) else 0.0


TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls for cls in (PickCan, MoveNear, OpenDrawer, CloseDrawer, OpenDrawerPlaceApple, StoreApple)
}
