"""Re-train a world model's progress head to rank imagined futures (issue "Planning that pays", item 4).

1. collect: the ``planner`` policy plays ``--episodes`` episodes per task on *training* seeds (default 50000+,
   away from the evaluation seeds 10000+) with ``planner.diagnostics``: every decision's context, the imagined
   futures of its final candidates, their true futures and each candidate's true progress in a restored copy of
   the simulator;
2. train: :func:`worldmodel.training.scorer.train_scorer` (frozen DiT, pairwise ranking loss) on the imagined or
   the true futures (``--futures``), episodes split 80 / 20, the held-out decisions' Spearman and top-1 before and
   after, on both futures, printed and saved;
3. export: the checkpoint with the new head at ``<out>/checkpoint`` (weights only).

    python scripts/train_scorer.py --checkpoint checkpoints/reference [--out outputs/scorer] [--episodes 4] \
        [--futures real]

Rerunning reuses ``<out>/futures.npz`` (pass ``--recollect`` to play again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def collect(world_model, tasks: list[str], episodes: int, seed: int, planner: dict, image_size: tuple[int, int]):
    """Play the planner with diagnostics and keep every decision's ranked futures."""
    import envs
    from policies.planner import PlannerPolicy
    from worldmodel.planner import PlannerConfig
    from worldmodel.training.scorer import RankedFutures

    cfg = PlannerConfig.from_dict({**planner, "diagnostics": True, "scorer": "learned"})
    parts = []
    for t, task in enumerate(tasks):
        for e in range(episodes):
            ep_seed = seed + 1000 * t + e
            env = envs.make(task, image_size=image_size)
            obs, info = env.reset(seed=ep_seed)
            policy = PlannerPolicy(env=env, world_model=world_model, planner=cfg, seed=ep_seed)
            policy.reset(ep_seed)
            rows: dict[str, list] = {k: [] for k in ("context", "imagined", "real", "true_progress")}
            done = False
            while not done:
                action = policy.select_action(obs)
                d = policy.last_diagnosis
                if d is not None and d.imagined is not None:
                    rows["context"].append(world_model.decode_frames(world_model.context(d.context))[0])
                    rows["imagined"].append(d.imagined)
                    rows["real"].append(d.real)
                    rows["true_progress"].append(d.true_progress.astype(np.float32))
                    policy.last_diagnosis = None
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            env.close()
            m = len(rows["context"])
            stages = len(env.unwrapped.task.stage_names)
            parts.append(RankedFutures(
                np.stack(rows["context"]), np.stack(rows["imagined"]), np.stack(rows["true_progress"]),
                np.full(m, stages, np.int64), np.repeat(obs["natural_language_embedding"][None], m, 0),
                np.array([obs["natural_language_instruction"]] * m), np.array([task] * m), np.full(m, ep_seed),
                np.stack(rows["real"])))
            print(f"  {task} seed {ep_seed}: {m} decisions, success={bool(info.get('is_success'))}", flush=True)
    return RankedFutures.concatenate(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", default="outputs/scorer")
    parser.add_argument("--tasks", nargs="+", default=None, help="default: all six")
    parser.add_argument("--episodes", type=int, default=4, help="per task")
    parser.add_argument("--seed", type=int, default=50000, help="first training episode seed")
    parser.add_argument("--candidates", type=int, default=None, help="planner.num_candidates (default: config)")
    parser.add_argument("--steps", type=int, default=400, help="head training steps")
    parser.add_argument("--image-size", type=int, nargs=2, default=(256, 320))
    parser.add_argument("--recollect", action="store_true")
    parser.add_argument("--futures", choices=("imagined", "real"), default="imagined",
                        help="train the head on the imagined futures (the planner's) or the true simulator's")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    from envs.tasks import TASK_CLASSES
    from worldmodel import WorldModel
    from worldmodel.training.checkpoint import export_weights
    from worldmodel.training.scorer import RankedFutures, train_scorer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wm = WorldModel.from_checkpoint(args.checkpoint, device="cpu")
    futures = out / "futures.npz"
    start = time.perf_counter()
    if args.recollect or not futures.is_file():
        planner = {} if args.candidates is None else {"num_candidates": args.candidates}
        data = collect(wm, args.tasks or list(TASK_CLASSES), args.episodes, args.seed, planner, tuple(args.image_size))
        data.save(futures)
    data = RankedFutures.load(futures)
    collect_min = (time.perf_counter() - start) / 60
    start = time.perf_counter()
    head, report = train_scorer(wm, data, steps=args.steps, futures=args.futures)
    train_min = (time.perf_counter() - start) / 60
    dest = out / "checkpoint"
    if dest.exists():
        shutil.rmtree(dest)
    export_weights(args.checkpoint, dest, progress_head=head.state_dict())
    summary = {**asdict(report), "collect_minutes": round(collect_min, 2), "train_minutes": round(train_min, 2),
               "checkpoint": str(dest), "source": args.checkpoint, "episodes_per_task": args.episodes,
               "seed": args.seed}
    (out / "scorer.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
