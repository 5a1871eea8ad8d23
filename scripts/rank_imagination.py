"""Can a model's imagination rank another model's proposals? Proposals of one model, futures imagined by others.

Along one episode per task driven by ``--proposer`` (its first proposal executed, as ``dit`` does; training-free
seeds from ``--seed``, one per task), every decision's ``--n`` proposals are executed in a restored copy of the
simulator (true futures and true progress) and imagined by each ``--imaginer`` with independent draws per candidate
and from one shared draw (``planner.shared_noise``). Per imaginer and draw it prints, as means over decisions:

* ``action corr``: do the imagined candidates differ as the true ones do
  (:func:`worldmodel.planner.ranking.action_response`; 0 when the imagination ignores the action);
* ``spearman``: the imaginer's progress head on its imagined futures against the true progress (the planner's
  ranking), and the same head on the true futures (the scorer alone: the ladder's rung c);
* ``psnr``: imagined against true futures, at the imaginer's resolution.

    python scripts/rank_imagination.py --proposer checkpoints/reference \\
        --imaginer reference=checkpoints/reference --imaginer d1=outputs/runs/d1_dyn [--decisions 15] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np


def named(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--imaginer takes NAME=CHECKPOINT, got {text!r}")
    return name, path


def mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposer", required=True, help="checkpoint whose policy verb proposes and drives")
    parser.add_argument("--imaginer", type=named, action="append", required=True, metavar="NAME=CHECKPOINT")
    parser.add_argument("--tasks", nargs="+", default=["PickCan", "MoveNear", "OpenDrawer", "CloseDrawer"])
    parser.add_argument("--seed", type=int, default=50002, help="episode seed of the first task (+1 per task)")
    parser.add_argument("--decisions", type=int, default=15, help="decisions per episode at most")
    parser.add_argument("--n", type=int, default=8, help="proposals per decision")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps (proposals and imagination)")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="the env's camera (default: the env's own, as in evaluation)")
    parser.add_argument("--json", help="write the per-decision values here")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    import envs
    from policies.planner import PlannerPolicy
    from worldmodel import WorldModel
    from worldmodel.planner import PlannerConfig
    from worldmodel.planner.ranking import action_response, image_quality, spearman

    proposer = WorldModel.from_checkpoint(args.proposer, device="cpu")
    imaginers = {name: WorldModel.from_checkpoint(path, device="cpu") for name, path in args.imaginer}
    for name, wm in imaginers.items():
        if not wm.imagines:
            sys.exit(f"rank_imagination: --imaginer {name} has no dynamics verb (an action-only model)")
    cfg = PlannerConfig.from_dict({"num_candidates": args.n, "scorer": "none", "diagnostics": True,
                                   "sampling_steps": args.steps})
    modes = {"independent": False, "shared": True}
    rows: list[dict] = []
    for i, task in enumerate(args.tasks):
        seed = args.seed + i
        env = envs.make(task, **({"image_size": tuple(args.image_size)} if args.image_size else {}))
        obs, _ = env.reset(seed=seed)
        policy = PlannerPolicy(env=env, world_model=proposer, planner=cfg, seed=seed)
        policy.reset(seed)
        done, decisions = False, 0
        while not done and decisions < args.decisions:
            view = obs  # the observation the decision is made from (instruction tokens, robot state)
            action = policy.select_action(obs)
            d = policy.last_diagnosis
            if d is not None:
                policy.last_diagnosis = None
                decisions += 1
                true = policy.simulator.rollout(d.candidates)  # cached: the diagnosis' own rollouts
                row = {"task": task, "seed": seed, "decision": decisions - 1,
                       "true_progress": d.true_progress.tolist()}
                for name, wm in imaginers.items():
                    k = wm.context_frames
                    real = wm.decode_frames(wm.encode_frames(true.frames))  # (n, T, h, w, 3) at its resolution
                    ctx = wm.decode_frames(wm.encode_frames(d.context[-k:]))  # (K, h, w, 3)
                    contexts = np.repeat(ctx[None], len(real), 0)  # (n, K, h, w, 3)

                    def score(futures: np.ndarray, wm=wm, contexts=contexts, view=view) -> np.ndarray:  # its head
                        if not wm.has_progress:
                            return np.full(len(futures), math.nan)
                        return wm.progress(np.concatenate([contexts, futures], 1), view)[:, -1]

                    row[f"{name}/true/spearman"] = spearman(score(real), d.true_progress)
                    for mode, shared in modes.items():
                        gen = torch.Generator().manual_seed(seed * 1000 + decisions)
                        imagined = wm.imagine(ctx, view, d.candidates, args.steps, gen, shared_noise=shared)
                        row[f"{name}/{mode}/action_corr"] = action_response(imagined, real).corr
                        row[f"{name}/{mode}/spearman"] = spearman(score(imagined), d.true_progress)
                        row[f"{name}/{mode}/psnr"] = image_quality(imagined, real)[0]
                rows.append(row)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        env.close()
        print(f"{task} seed {seed}: {decisions} decisions", flush=True)

    print(f"\n{len(rows)} decisions, {args.n} proposals each, proposer {args.proposer}\n")
    print("| imaginer | futures | action corr | spearman (progress head) | psnr |\n|---|---|---|---|---|")
    for name in imaginers:
        print(f"| {name} | true | — | {mean([r[f'{name}/true/spearman'] for r in rows]):+.2f} | — |")
        for mode in modes:
            vals = {m: mean([r[f"{name}/{mode}/{m}"] for r in rows]) for m in ("action_corr", "spearman", "psnr")}
            print(f"| {name} | imagined, {mode} draws | {vals['action_corr']:+.2f} | {vals['spearman']:+.2f} | "
                  f"{vals['psnr']:.1f} |")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                    for k, v in r.items()} for r in rows], indent=1))
        tmp.replace(path)
        print(f"per decision: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
