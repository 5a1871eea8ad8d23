"""The README's main job (``make demo``): from nothing to a planning robot on this machine's CPU.

Stages, each a ``worldmodel`` command with its own progress bar:

1. ``worldmodel data sim``        noisy scripted experts → an RT-1-schema RLDS dataset (256×320 renders, start
                                  poses spread over ±15 cm, as the reference model's data)
2. ``worldmodel pretrain``        Self-Flow video pretraining of the reference recipe's network (``demo`` preset)
3. ``pretrain_keypoints.py``      the keypoint net + head alone, by regression from pixels, steered by the
                                  instruction, from stage 2
4. ``worldmodel finetune rt1``    the reference recipe (``+experiment=reference``: instruction, state, patch
                                  position and keypoint tokens) on the verb mix (+ progress head), ``data=sim``,
                                  briefly, from stage 3
5. ``worldmodel eval sim``        closed-loop: ``scripted``, then ``dit`` (the model's own policy verb) and
                                  ``planner`` for the fresh model and for the shipped ``checkpoints/reference``
6. the report                     ``report/README.md``: success per task and stage, latencies, loss curves, videos

    python scripts/demo.py [--out outputs/demo] [--report report] [--pretrain-steps 800] ...

The defaults fit the 30-minute CPU budget of a 2-core machine. The fresh model trains for a fraction of the
reference model's schedule on a tenth of its data, so it shows the chain working; the reference model beside it
(trained by ``scripts/reference.py``, README "Results") shows what the recipe reaches.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


def stage(title: str, args: list[str], log: list[str], script: str | None = None) -> None:
    """Run one ``worldmodel`` command (or ``script`` with ``args``), streaming its output; stop the demo if it
    fails."""
    command = [sys.executable, script] if script else [sys.executable, "-m", "worldmodel.cli"]
    shown = f"{Path(script).name if script else 'worldmodel'} {' '.join(args)}"
    print(f"\n=== {title}\n$ {shown}", flush=True)
    start = time.perf_counter()
    rc = subprocess.call([*command, *args])
    seconds = time.perf_counter() - start
    if rc != 0:
        sys.exit(f"demo: stage '{title}' failed with exit code {rc}")
    log.append(f"| {title} | `{shown}` | {seconds / 60:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="data, runs and evaluations go here")
    parser.add_argument("--report", default="report", help="report folder")
    parser.add_argument("--episodes", type=int, default=60, help="simulated episodes to write")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--keypoint-steps", type=int, default=1000, help="stage 3 (batch 64)")
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--reference", default="checkpoints/reference",
                        help="the shipped model evaluated beside the fresh one (skipped when absent)")
    parser.add_argument("--scripted-episodes", type=int, default=3, help="per task")
    parser.add_argument("--model-episodes", type=int, default=1, help="per task, for dit and planner")
    parser.add_argument("--candidates", type=int, default=4, help="planner candidates per decision")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing --out folder first")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = Path(args.out)
    if out.exists() and args.overwrite:
        shutil.rmtree(out)
    if out.exists():
        sys.exit(f"demo: {out} exists; remove it, pass --overwrite, or pass another --out")
    data, pre, kp, ft = out / "data", out / "pretrain", out / "keypoints", out / "finetune"
    log: list[str] = []
    start = time.perf_counter()

    stage("1/6 simulated RT-1 data", ["data", "sim", f"out={data}", f"episodes={args.episodes}",
                                      "image_size=[256,320]", "policy.noise=0.1", "start_jitter=[0.15,0.15,0.06]",
                                      "workers=2"], log)
    train = ["data=sim", f"data.dir={data}", "logger=none", "train.sample_every=500", "train.ckpt_every=500"]
    # pretraining builds the same network (its instruction and state layers stay frozen: video has neither)
    stage("2/6 Self-Flow pretraining", ["pretrain", "+experiment=reference", "objective.selfflow=true", *train,
                                        f"train.steps={args.pretrain_steps}", f"run_dir={pre}"], log)
    stage("3/6 keypoint pretraining", ["--data", str(data / "tabletop_sim" / "0.1.0"), "--init", str(pre), "--out",
                                       str(kp), "--language", "--steps", str(args.keypoint_steps), "--heldout", "6"],
          log, script=str(Path(__file__).with_name("pretrain_keypoints.py")))
    stage("4/6 fine-tuning (reference recipe)", ["finetune", "rt1", "+experiment=reference", *train,
                                                 f"train.steps={args.finetune_steps}", f"init={kp}", f"run_dir={ft}"],
          log)
    models = {"": ft}
    reference = Path(args.reference)
    if (reference / "ema.safetensors").is_file():
        models[" (reference)"] = reference
    else:
        print(f"demo: no reference model at {reference}; evaluating the fresh model only", flush=True)
    runs = [("scripted", args.scripted_episodes, ["policy=scripted"])]
    for suffix, ckpt in models.items():
        runs += [(f"dit{suffix}", args.model_episodes, ["policy=dit", f"checkpoint={ckpt}"]),
                 (f"planner{suffix}", args.model_episodes, ["policy=planner", f"checkpoint={ckpt}",
                                                            f"planner.num_candidates={args.candidates}"])]
    evals = {}
    for name, episodes, extra in runs:
        evals[name] = out / "eval" / name.replace(" (reference)", "_reference")
        stage(f"5/6 closed-loop evaluation: {name}", [
            "eval", "sim", *extra, f"eval.episodes={episodes}", "eval.seed=1000",
            f"eval.out={evals[name]}", f"eval.videos={str(name != 'scripted').lower()}",
            f"eval.workers={1 if name == 'scripted' else 2}"], log)

    from worldmodel.evaluation.report import build_report

    minutes = (time.perf_counter() - start) / 60
    notes = [f"Made by `python scripts/demo.py` on {platform.machine()} ({os.cpu_count()} CPUs), "
             f"{minutes:.1f} minutes after setup.", "", "| stage | command | minutes |", "|---|---|---|", *log]
    readme = build_report(args.report, evals, {"pretrain": pre, "finetune": ft}, notes)
    print(f"\ndemo finished in {minutes:.1f} min; report: {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
