"""The copycat check: does a plain behaviour-cloning net learn where the object is, with and without the robot state?

    python scripts/probe_copycat.py [--episodes 120 --heldout 20 --steps 2000] [--start-jitter 0.15 0.15 0.06]

Rolls out the noise-free scripted expert on PickCan and MoveNear (seeds 0 .. episodes-1 per task; the last
``--heldout`` of each task are held out), renders at 256x320 and resizes to 64x80 as the model sees them, and trains
three small nets to predict the next two actions: state only, image only (``SpatialSoftmaxKeypoints`` + MLP), image +
state. Prints the held-out normalised MSE of the xyz actions over all steps and over the first step of each
episode, where the arm has not moved yet and only the image can say where the object is (docs/experiments.md,
"the policy copies the heading its pose implies").
"""

from __future__ import annotations

import argparse
import os
import sys


def collect(tasks: list[str], episodes: int, start_jitter: tuple[float, ...] | None = None):
    """(frames uint8 (N, 64, 80, 3), states (N, 8), next two actions (N, 14), episode ids (N,), seeds (N,))."""
    import numpy as np
    from PIL import Image

    from worldmodel.data.sim import rollout

    frames, states, actions, ids, seeds = [], [], [], [], []
    for i, task in enumerate(tasks):
        for seed in range(episodes):
            ep = rollout(task, seed, start_jitter=start_jitter)
            for t in range(len(ep.actions) - 1):
                frames.append(np.asarray(Image.fromarray(ep.images[t]).resize((80, 64), Image.BILINEAR)))
                states.append(np.concatenate([ep.base_pose_tool_reached[t], ep.gripper_closed[t]]))
                actions.append(np.concatenate([ep.actions[t], ep.actions[t + 1]]))
                ids.append(i * episodes + seed)
                seeds.append(seed)
    return np.stack(frames), np.stack(states), np.stack(actions), np.array(ids), np.array(seeds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["PickCan", "MoveNear"])
    parser.add_argument("--episodes", type=int, default=120, help="expert episodes per task")
    parser.add_argument("--heldout", type=int, default=20, help="the last N episodes of each task are held out")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--start-jitter", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="the env's start-pose jitter in metres (default: the env's, 3 cm)")
    args = parser.parse_args()
    if not 0 < args.heldout < args.episodes:
        parser.error("--heldout must be in (0, --episodes)")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    import torch
    from torch import nn

    from worldmodel.models.dit import SpatialSoftmaxKeypoints

    torch.set_num_threads(1)
    f, s, a, ids, seeds = collect(args.tasks, args.episodes, args.start_jitter)
    frames = torch.tensor(f).permute(0, 3, 1, 2).float() / 127.5 - 1
    state, act = torch.tensor(s).float(), torch.tensor(a).float()
    act = (act - act.mean(0)) / (act.std(0) + 1e-6)
    state = (state - state.mean(0)) / (state.std(0) + 1e-6)
    test = seeds >= args.episodes - args.heldout
    first = np.r_[True, ids[1:] != ids[:-1]]  # the first step of every episode
    train, held, held_first = np.where(~test)[0], np.where(test)[0], np.where(test & first)[0]
    mean_first = act[np.where(~test & first)[0]].mean(0)

    class Net(nn.Module):
        def __init__(self, image: bool, with_state: bool) -> None:
            super().__init__()
            self.image, self.with_state = image, with_state
            self.keypoints = SpatialSoftmaxKeypoints(3, 32)
            self.mlp = nn.Sequential(nn.Linear(64 * image + 8 * with_state, 256), nn.SiLU(), nn.Linear(256, 256),
                                     nn.SiLU(), nn.Linear(256, act.shape[1]))

        def forward(self, rows: np.ndarray) -> torch.Tensor:
            parts = ([state[rows]] if self.with_state else []) + ([self.keypoints(frames[rows])] if self.image else [])
            return self.mlp(torch.cat(parts, -1))

    def xyz_mse(pred: torch.Tensor, rows: np.ndarray) -> float:
        return float(((pred - act[rows]) ** 2).mean(0)[:3].mean())

    print(f"{len(act)} steps, {len(held)} held out ({len(held_first)} episodes); {args.steps} steps of batch "
          f"{args.batch}\n\n| inputs | all steps | first step |\n|---|---|---|\n"
          f"| mean first action (no model) | | {xyz_mse(mean_first.expand(len(held_first), -1), held_first):.3f} |",
          flush=True)
    for name, image, with_state in (("state only", False, True), ("image only", True, False),
                                    ("image + state", True, True)):
        torch.manual_seed(0)
        net = Net(image, with_state)
        opt = torch.optim.AdamW(net.parameters(), args.lr)
        rng = np.random.default_rng(0)
        for _ in range(args.steps):
            rows = rng.choice(train, args.batch)
            loss = ((net(rows) - act[rows]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            print(f"| {name} | {xyz_mse(net(held), held):.3f} | {xyz_mse(net(held_first), held_first):.3f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
