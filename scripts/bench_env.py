"""Milliseconds per ``env.step`` without an image and with 64×80 and 256×320 images (3 Hz control), and of the
camera render alone.

    python scripts/bench_env.py --steps 60
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import envs
from envs.tabletop import TabletopEnv


def bench(image_size: tuple[int, int] | None, steps: int, task: str) -> float:
    env = envs.make(task, image_size=image_size or (64, 80))
    env.reset(seed=0)
    u: TabletopEnv = env.unwrapped
    if image_size is None:  # physics + IK only: skip the camera
        u._render_image = lambda: np.zeros((*u.image_size, 3), np.uint8)  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    actions = rng.uniform(envs.tabletop.ACTION_LOW, envs.tabletop.ACTION_HIGH, size=(steps, 7)) * 0.3
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset(seed=1)
    return 1000 * (time.perf_counter() - start) / steps


def bench_render(image_size: tuple[int, int], frames: int, task: str) -> float:
    env = envs.make(task, image_size=image_size)
    env.reset(seed=0)
    u: TabletopEnv = env.unwrapped
    start = time.perf_counter()
    for _ in range(frames):
        u._render_image()
    return 1000 * (time.perf_counter() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--task", default="PickCan")
    args = parser.parse_args()
    print(f"# env.step on {platform.processor() or platform.machine()}, {args.task}, {args.steps} steps")
    print("| image | ms per step | ms per render alone |\n|---|---|---|")
    for size in (None, (64, 80), (256, 320)):
        label = "none (physics + IK)" if size is None else f"{size[0]}×{size[1]}"
        render = "—" if size is None else f"{bench_render(size, args.steps, args.task):.1f}"
        print(f"| {label} | {bench(size, args.steps, args.task):.1f} | {render} |")


if __name__ == "__main__":
    main()
