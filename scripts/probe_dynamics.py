"""Does a model's ``dynamics`` verb follow the action? The imagined futures of six full-scale hand pushes against
the simulator's, from the first state of a few episodes per task (``worldmodel.evaluation.probes.dynamics_probe``).

    python scripts/probe_dynamics.py --checkpoint checkpoints/reference [--tasks PickCan OpenDrawer] \\
        [--seeds 10000 10001] [--sheet outputs/probe_dynamics.png]

Prints per state the correlation of the imagined and true futures' differences (1: the imagination moves the arm as
the actions do; 0: it ignores them) and their spreads, then the mean; ``--sheet`` saves the last frames (true row
above imagined row) of every probed state as one image.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tasks", nargs="+", default=["PickCan", "MoveNear", "OpenDrawer", "CloseDrawer"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[10000, 10001])
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="sampler steps per imagined chunk")
    parser.add_argument("--sheet", help="save a contact sheet of the last frames here (.png)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    from worldmodel import WorldModel
    from worldmodel.evaluation.probes import dynamics_probe

    wm = WorldModel.from_checkpoint(args.checkpoint, device="cpu")
    corrs, rows = [], []
    print("| task | seed | action corr | imagined spread | true spread |\n|---|---|---|---|---|")
    for task in args.tasks:
        for seed in args.seeds:
            probe = dynamics_probe(wm, task, seed, args.horizon, args.steps)
            r = probe.response
            corrs.append(r.corr)
            print(f"| {task} | {seed} | {r.corr:+.2f} | {r.imagined_spread:.3f} | {r.true_spread:.3f} |", flush=True)
            rows.append(np.concatenate([np.concatenate(list(probe.true[:, -1]), 1),
                                        np.concatenate(list(probe.imagined[:, -1]), 1)], 0))
    finite = [c for c in corrs if math.isfinite(c)]
    print(f"mean action corr {np.mean(finite) if finite else math.nan:+.3f} over {len(finite)} states")
    if args.sheet:
        from PIL import Image

        Image.fromarray(np.concatenate(rows, 0)).save(args.sheet)
        print(f"sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
