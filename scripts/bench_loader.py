"""Clip-loader throughput: clips/s at 64×80 and 256×320 model resolution, with 1 and 2 DataLoader workers.

    .venv/bin/python scripts/bench_loader.py                       # synthetic 256x320 episodes in a temp dir
    .venv/bin/python scripts/bench_loader.py --data outputs/sim_data/tabletop_sim/0.1.0 --clips 400
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from worldmodel.data import (
    ClipConfig,
    ClipDataset,
    ClipLoader,
    compute_action_stats,
    open_rlds,
    write_dataset,
)
from worldmodel.data.synthetic import synthetic_episode


def bench(path: str, size: tuple[int, int], workers: int, clips: int, batch: int) -> float:
    """Clips per second over ``clips`` clips after the first batch (worker start-up excluded)."""
    stats = compute_action_stats(open_rlds(path))
    cfg = ClipConfig(context_frames=1, future_frames=2, image_size=size, shuffle_buffer=64, epochs=None)
    loader = ClipLoader(ClipDataset(path, cfg, stats), batch_size=batch, num_workers=workers)
    it = iter(loader)
    next(it)
    start, seen = time.perf_counter(), 0
    while seen < clips:
        seen += len(next(it)["clip_id"])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset version directory (default: write a synthetic one)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--clips", type=int, default=256, help="clips timed per setting")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or str(write_dataset(
            (synthetic_episode(i, 40, image_hw=(256, 320)) for i in range(args.episodes)), tmp, "bench_sim",
            num_episodes=args.episodes, progress=False))
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; data: {path}")
        print(f"{'H x W':>9}  {'workers':>7}  {'clips/s':>8}")
        for size in ((64, 80), (256, 320)):
            for workers in (1, 2):
                rate = bench(path, size, workers, args.clips, args.batch)
                print(f"{size[0]:>4} x {size[1]:<3}  {workers:>7}  {rate:>8.1f}")


if __name__ == "__main__":
    main()
