"""Train the reference model from nothing on this machine's CPU and export it, weights only.

Stages (each a command; rerunning the script continues where it stopped):

1. ``worldmodel data sim``       1,200 noisy expert episodes (seeds 0–1199; ``--tasks`` weights PickCan and
                                 MoveNear 3×) rendered at 256×320, start poses spread over ±15 cm (``start_jitter``)
2. ``worldmodel finetune rt1``   the base recipe ``+experiment=reference_base`` (instruction + state tokens, patch
                                 positions), ``--base-steps``, ``resume=auto``
3. ``pretrain_keypoints.py``     the keypoint net + head alone, by regression from pixels, steered by the
                                 instruction (``--language``), from the base; ``--keypoint-steps`` × 64
4. ``worldmodel finetune rt1``   the competence recipe ``+experiment=reference`` (configs/experiment/reference.yaml:
                                 flow matching, 6,000 steps) from stage 3, ``resume=auto``
5. export                        EMA weights, progress head, config and statistics to ``--export`` (safetensors
                                 only, :func:`worldmodel.training.checkpoint.export_weights`)
6. ``worldmodel eval sim``       ``policy=dit`` on held-out episode seeds (``--eval-seed``, default 10000)

    python scripts/reference.py [--out outputs/reference] [--export checkpoints/reference] [--steps 6000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# the grasp tasks need the most samples (docs/experiments.md, sixth session): 3 of every 10 episodes each
GRASP_WEIGHTED = ("[PickCan,MoveNear,PickCan,OpenDrawer,MoveNear,CloseDrawer,PickCan,OpenDrawerPlaceApple,MoveNear,"
                  "StoreApple]")


def run(title: str, args: list[str], script: str | None = None) -> float:
    """Run one ``worldmodel`` command (or ``script`` with ``args``); stop on failure; returns its minutes."""
    command = [sys.executable, script] if script else [sys.executable, "-m", "worldmodel.cli"]
    print(f"\n=== {title}\n$ {script or 'worldmodel'} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    if subprocess.call([*command, *args]) != 0:
        sys.exit(f"reference: stage '{title}' failed")
    return (time.perf_counter() - start) / 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/reference", help="data, run and evaluation go here")
    parser.add_argument("--export", default="checkpoints/reference", help="where the weights-only model goes")
    parser.add_argument("--episodes", type=int, default=1200)
    parser.add_argument("--tasks", default=GRASP_WEIGHTED, help="the data's task list (episode i runs task i mod n)")
    parser.add_argument("--base-steps", type=int, default=5000, help="stage 2")
    parser.add_argument("--keypoint-steps", type=int, default=4000, help="stage 3 (batch 64)")
    parser.add_argument("--steps", type=int, default=None,
                        help="stage 4 (default: the recipe's train.steps, configs/experiment/reference.yaml)")
    parser.add_argument("--eval-episodes", type=int, default=30, help="per task (0: skip the evaluation)")
    parser.add_argument("--eval-seed", type=int, default=10000, help="first held-out episode seed")
    parser.add_argument("--workers", type=int, default=2, help="processes for data and evaluation")
    args = parser.parse_args()
    for key, value in (("MUJOCO_GL", "egl"), ("WANDB_MODE", "offline"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(key, value)
    out, minutes = Path(args.out), {}
    data, base, keypoints, run_dir = out / "data", out / "base", out / "keypoints", out / "run"
    if not (data / "tabletop_sim").is_dir():
        minutes["data"] = run("data", ["data", "sim", f"out={data}", f"episodes={args.episodes}",
                                       f"tasks={args.tasks}", "image_size=[256,320]", "policy.noise=0.1",
                                       "start_jitter=[0.15,0.15,0.06]",
                                       f"workers={args.workers}"])
    common = ["data=sim", f"data.dir={data}", "logger=none", "resume=auto"]
    minutes["base"] = run("base", ["finetune", "rt1", "+experiment=reference_base", *common,
                                   f"train.steps={args.base_steps}", f"run_dir={base}"])
    if not keypoints.is_dir():  # the script writes its output atomically: present means finished
        minutes["keypoints"] = run("keypoints", [
            "--data", str(data / "tabletop_sim" / "0.1.0"), "--init", str(base), "--out", str(keypoints),
            "--language", "--steps", str(args.keypoint_steps)], script=str(Path(__file__).with_name(
                "pretrain_keypoints.py")))
    minutes["finetune"] = run("finetune", ["finetune", "rt1", "+experiment=reference", *common,
                                           f"init={keypoints}", f"run_dir={run_dir}",
                                           *([f"train.steps={args.steps}"] if args.steps else [])])
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

        steps = f" --steps {args.steps}" if args.steps else ""
        notes = [f"`python scripts/reference.py --out {out} --base-steps {args.base_steps} --keypoint-steps "
                 f"{args.keypoint_steps}{steps} --eval-episodes {args.eval_episodes} --eval-seed {args.eval_seed}`"]
        report = build_report(out / "report", {"dit (reference)": out / "eval_dit"},
                              {"base": base, "reference": run_dir}, notes, title="The reference model")
        print(f"report: {report}")
    print("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
