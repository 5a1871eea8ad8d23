"""Train the reference model from nothing on this machine's CPU and export it, weights only.

Stages (each a ``worldmodel`` command; rerunning the script continues where it stopped):

1. ``worldmodel data sim``      600 noisy expert episodes (100 per task, seeds 0–599) rendered at 256×320
2. ``worldmodel finetune rt1``  ``+experiment=reference`` (configs/experiment/reference.yaml), ``resume=auto``
3. export                       EMA weights, progress head, config and statistics to ``--export`` (safetensors
                                only, :func:`worldmodel.training.checkpoint.export_weights`)
4. ``worldmodel eval sim``      ``policy=dit`` on held-out episode seeds (``--eval-seed``, default 10000)

    python scripts/reference.py [--out outputs/reference] [--export checkpoints/reference] [--steps 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(title: str, args: list[str]) -> float:
    """Run one ``worldmodel`` command; stop on failure; returns its minutes."""
    print(f"\n=== {title}\n$ worldmodel {' '.join(args)}", flush=True)
    start = time.perf_counter()
    if subprocess.call([sys.executable, "-m", "worldmodel.cli", *args]) != 0:
        sys.exit(f"reference: stage '{title}' failed")
    return (time.perf_counter() - start) / 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/reference", help="data, run and evaluation go here")
    parser.add_argument("--export", default="checkpoints/reference", help="where the weights-only model goes")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=30, help="per task (0: skip the evaluation)")
    parser.add_argument("--eval-seed", type=int, default=10000, help="first held-out episode seed")
    parser.add_argument("--workers", type=int, default=2, help="processes for data and evaluation")
    args = parser.parse_args()
    for key, value in (("MUJOCO_GL", "egl"), ("WANDB_MODE", "offline"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(key, value)
    out, minutes = Path(args.out), {}
    data, run_dir = out / "data", out / "run"
    if not (data / "tabletop_sim").is_dir():
        minutes["data"] = run("data", ["data", "sim", f"out={data}", f"episodes={args.episodes}",
                                       "image_size=[256,320]", "policy.noise=0.1", f"workers={args.workers}"])
    minutes["finetune"] = run("finetune", ["finetune", "rt1", "+experiment=reference", "data=sim", f"data.dir={data}",
                                           f"train.steps={args.steps}", "logger=none", f"run_dir={run_dir}",
                                           "resume=auto"])
    from worldmodel.training.checkpoint import export_weights

    export = Path(args.export)
    if export.exists():
        shutil.rmtree(export)
    export_weights(run_dir, export)
    print(f"exported {export}")
    if args.eval_episodes:
        minutes["eval"] = run("eval", ["eval", "sim", "policy=dit", f"checkpoint={export}",
                                       f"eval.episodes={args.eval_episodes}", f"eval.seed={args.eval_seed}",
                                       f"eval.workers={args.workers}", f"eval.out={out / 'eval_dit'}"])
        from worldmodel.evaluation.report import build_report

        notes = [f"`python scripts/reference.py --out {out} --steps {args.steps} --eval-episodes {args.eval_episodes} "
                 f"--eval-seed {args.eval_seed}`"]
        report = build_report(out / "report", {"dit (reference)": out / "eval_dit"}, {"reference": run_dir}, notes,
                              title="The reference model")
        print(f"report: {report}")
    print("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
