"""Cheap synthetic episodes in the writer's :class:`~worldmodel.data.writer.Episode` form (tests, benchmarks).

A coloured square moves by the episode's ``world_vector`` actions over a textured background, so frames
depend on actions and JPEG round trips are exercised on non-trivial images. No physics, no encoder: the
language vector is a seeded random unit vector unless ``language`` is given.
"""

from __future__ import annotations

import numpy as np

from worldmodel.data.writer import Episode

TASKS = ("pick coke can", "open top drawer", "move apple near sponge")


def synthetic_episode(seed: int, length: int = 12, image_hw: tuple[int, int] = (64, 80),
                      language: np.ndarray | None = None) -> Episode:
    """Make one deterministic synthetic episode.

    Args:
        seed: determines everything (task, actions, images).
        length: number of observations T (T - 1 actions).
        image_hw: (H, W) of the generated frames; the writer resizes to 256×320.
        language: optional (512,) embedding; default a seeded random unit vector.

    Returns:
        Episode with T = ``length`` observations.
    """
    rng = np.random.default_rng(seed)
    h, w = image_hw
    task_index = seed % len(TASKS)
    actions = np.zeros((length - 1, 7), np.float32)
    actions[:, :3] = rng.normal(0, 0.02, (length - 1, 3))
    actions[:, 3:6] = rng.normal(0, 0.05, (length - 1, 3))
    actions[:, 6] = rng.choice([-1.0, 0.0, 1.0], length - 1, p=[0.1, 0.8, 0.1])
    pos = np.concatenate([np.zeros((1, 3)), np.cumsum(actions[:, :3], 0)]) + np.array([0.5, 0.0, 0.3])
    yy, xx = np.mgrid[0:h, 0:w]
    background = (np.stack([xx * 255 / w, yy * 255 / h, np.full_like(xx, 96.0)], -1)).astype(np.uint8)
    color = rng.integers(0, 256, 3, dtype=np.uint8)
    images = np.repeat(background[None], length, 0)
    side = max(2, h // 8)
    for t in range(length):
        cy = int(np.clip((pos[t, 0] - 0.3) / 0.4 * h, 0, h - side))
        cx = int(np.clip((pos[t, 1] + 0.2) / 0.4 * w, 0, w - side))
        images[t, cy:cy + side, cx:cx + side] = color
    quat = np.tile(np.array([0, 0, 0, 1], np.float32), (length, 1))
    if language is None:
        language = rng.normal(size=512).astype(np.float32)
        language /= np.linalg.norm(language)
    rewards = np.zeros(length - 1, np.float32)
    success = bool(seed % 2 == 0)
    if success:
        rewards[-1] = 1.0
    return Episode(
        images=images, actions=actions, rewards=rewards, instruction=TASKS[task_index],
        language=language.astype(np.float32),
        base_pose_tool_reached=np.concatenate([pos, quat], 1).astype(np.float32),
        gripper_closed=rng.uniform(0, 1, (length, 1)).astype(np.float32),
        success=success, task=f"Synthetic{task_index}", task_index=task_index,
        env_name=f"Synthetic/Task{task_index}-v0", collection_mode="synthetic",
    )
