"""Task definitions: what the scene looks like at reset, the instruction, and the stage predicates.

Each task is a small object the env calls into; every random draw comes from the env's ``np_random`` so a seed
fixes the episode. Stages are completed in order and stay completed (a later stage only counts once the earlier
ones have); the episode succeeds, and terminates, when the last stage completes.
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

Predicate = Callable[["TabletopEnv"], bool]


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


TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls for cls in (PickCan, MoveNear, OpenDrawer, CloseDrawer, OpenDrawerPlaceApple, StoreApple)
}
