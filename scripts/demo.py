"""The README's main job (``make demo``): closed-loop evaluation of the scripted experts on all six tasks.

It writes ``outputs/demo/eval_info.json`` and one video per task, and prints the per-task success table.
Later stages (data generation, pretraining, fine-tuning, planning) plug into this script as they land.

    python scripts/demo.py [--episodes 10] [--out outputs/demo]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--out", default="outputs/demo")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from worldmodel.cli import main as cli

    rc = cli(["eval", "sim", "policy=scripted", f"eval.episodes={args.episodes}", f"eval.out={args.out}",
              f"eval.workers={args.workers}", "eval.image_size=[256,320]"])
    if rc == 0:
        print(f"\nreport: {args.out}/eval_info.json")
    return rc


if __name__ == "__main__":
    sys.exit(main())
