"""Render the first frame of every task at 256×320 into one labelled PNG grid (docs/tasks.png).

    python scripts/render_tasks.py --out docs/tasks.png --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import envs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/tasks.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.6))
    for ax, task in zip(axes.flat, envs.TASKS, strict=True):
        env = envs.make(task, image_size=(256, 320))
        obs, _ = env.reset(seed=args.seed)
        ax.imshow(obs["image"])
        ax.set_title(f"{task}\n\"{obs['natural_language_instruction']}\"", fontsize=9)
        ax.axis("off")
        env.close()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
