"""Does a model's policy look? The vision probe of a checkpoint, and the architecture's synthetic localisation check.

    python scripts/probe_vision.py --checkpoint checkpoints/reference [--task PickCan --object coke_can]
    python scripts/probe_vision.py --checkpoint checkpoints/reference --along-expert --task MoveNear --seed 10003
    python scripts/probe_vision.py --localisation demo --steps 300 [--set keypoints=32]

The first prints the mean first actions (xyz summed over the first two, metres) of the ``policy`` verb from one state
with the real frame, a black frame and noise, and with the object moved over a 3 x 3 grid of table positions, beside
the scripted expert's (``worldmodel.evaluation.probes.vision_probe``). With ``--along-expert`` it instead follows the
noise-free expert's episode and prints, per phase (reach, close, carry, release), how the model's first action
agrees with the expert's from the same states (``expert_trajectory_probe``; ``--object`` defaults to the task's
source object there). The second trains an action-only model to act
on where a square is in its frame and prints the held-out MSE (chance 0.333; ``localisation_error``).
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="probe this model's policy verb")
    parser.add_argument("--task", default="PickCan")
    parser.add_argument("--object", help="the object moved / followed (default: coke_can; --along-expert: the "
                        "task's source object)")
    parser.add_argument("--along-expert", action="store_true",
                        help="probe every state of the expert's own episode instead of the first state's grid")
    parser.add_argument("--seed", type=int, nargs="+", default=[10003],
                        help="episode seed(s) of the probe's layout; with several, also the mean follow slope")
    parser.add_argument("--no-state", action="store_true",
                        help="probe without the robot state (policy.use_state=false)")
    parser.add_argument("--localisation", metavar="PRESET", help="run the synthetic check on this model preset")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=INT", help="model overrides, e.g. keypoints=32")
    args = parser.parse_args()
    if not (args.checkpoint or args.localisation):
        parser.error("give --checkpoint and/or --localisation")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    from worldmodel.evaluation.probes import follow_slope, localisation_error, vision_probe

    if args.checkpoint:
        from worldmodel import WorldModel

        wm = WorldModel.from_checkpoint(args.checkpoint)
        slopes = []
        for seed in args.seed if args.along_expert else ():
            from worldmodel.evaluation.probes import expert_trajectory_probe, trajectory_summary

            rows = expert_trajectory_probe(wm, args.task, seed, args.object, use_state=not args.no_state)
            print(f"| {args.task} seed {seed}, expert's episode | steps | xyz cosine | gripper agrees | hand–object m |"
                  "\n|---|---|---|---|---|")
            for phase, s in trajectory_summary(rows).items():
                print(f"| {phase} | {s['steps']} | {s['cosine']:+.2f} | {s['gripper']:.2f} | {s['distance']:.3f} |")
            print()
        for seed in () if args.along_expert else args.seed:
            print(f"| {args.task} seed {seed} | model dx, dy, dz | expert dx, dy, dz |\n|---|---|---|")
            rows = vision_probe(wm, args.task, seed, args.object or "coke_can", use_state=not args.no_state)
            for row in rows:
                expert = "" if row.expert is None else ", ".join(f"{v:+.3f}" for v in row.expert)
                print(f"| {row.label} | {', '.join(f'{v:+.3f}' for v in row.model)} | {expert} |")
            slope, r2 = follow_slope(rows)
            slopes.append(slope)
            print(f"follow slope {slope:+.2f} (R² {r2:.2f}): 1 = moves as the expert does over the grid, 0 = ignores "
                  "it\n")
        if len(slopes) > 1:
            print(f"mean follow slope over seeds {', '.join(map(str, args.seed))}: {sum(slopes) / len(slopes):+.2f} "
                  f"(range {min(slopes):+.2f} … {max(slopes):+.2f})")
    if args.localisation:
        overrides = {}
        for kv in args.set:
            key, value = kv.split("=", 1)
            overrides[key] = value.lower() == "true" if value.lower() in ("true", "false") else int(value)
        err = localisation_error(args.localisation, args.steps, **overrides)
        print(f"localisation MSE after {args.steps} steps ({args.localisation}, {overrides}): {err:.4f} (chance 0.333)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
