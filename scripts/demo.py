"""The README's main job (``make demo``): from nothing to a planning robot on this machine's CPU.

Stages, each a ``worldmodel`` command with its own progress bar:

1. ``worldmodel data sim``        noisy scripted experts → an RT-1-schema RLDS dataset (64×80 renders)
2. ``worldmodel pretrain``        Self-Flow video pretraining of the ``demo`` preset
3. ``worldmodel finetune rt1``    the policy / dynamics / inverse / video verb mix (+ progress head), ``data=sim``
4. ``worldmodel eval sim``        closed-loop: ``scripted``, ``dit`` (the model's own policy verb), ``planner``
5. the report                     ``report/README.md``: success per task and stage, latencies, loss curves, videos

    python scripts/demo.py [--out outputs/demo] [--report report] [--pretrain-steps 800] ...

The defaults fit the 30-minute CPU budget of a 2-core machine; the model is tiny and briefly trained, so read the
model policies' numbers as a smoke test of the chain, not as the method's performance (README, "Results").
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


def stage(title: str, args: list[str], log: list[str]) -> None:
    """Run one ``worldmodel`` command, streaming its output; stop the demo if it fails."""
    print(f"\n=== {title}\n$ worldmodel {' '.join(args)}", flush=True)
    start = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "worldmodel.cli", *args])
    seconds = time.perf_counter() - start
    if rc != 0:
        sys.exit(f"demo: stage '{title}' failed with exit code {rc}")
    log.append(f"| {title} | `worldmodel {' '.join(args)}` | {seconds / 60:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="data, runs and evaluations go here")
    parser.add_argument("--report", default="report", help="report folder")
    parser.add_argument("--episodes", type=int, default=60, help="simulated episodes to write")
    parser.add_argument("--pretrain-steps", type=int, default=800)
    parser.add_argument("--finetune-steps", type=int, default=1200)
    parser.add_argument("--scripted-episodes", type=int, default=3, help="per task")
    parser.add_argument("--model-episodes", type=int, default=1, help="per task, for dit and planner")
    parser.add_argument("--candidates", type=int, default=8, help="planner candidates per decision")
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
    data, pre, ft = out / "data", out / "pretrain", out / "finetune"
    log: list[str] = []
    start = time.perf_counter()

    stage("1/5 simulated RT-1 data", ["data", "sim", f"out={data}", f"episodes={args.episodes}",
                                      "image_size=[64,80]", "policy.noise=0.1", "workers=2"], log)
    train = ["data=sim", f"data.dir={data}", "model=demo", "train=demo", "logger=none",
             "train.sample_every=400", "train.ckpt_every=400"]
    stage("2/5 Self-Flow pretraining", ["pretrain", *train, f"train.steps={args.pretrain_steps}",
                                        f"run_dir={pre}"], log)
    stage("3/5 fine-tuning (verb mix)", ["finetune", "rt1", *train, f"train.steps={args.finetune_steps}",
                                         f"init={pre}", f"run_dir={ft}"], log)
    evals = {}
    for name, episodes, extra in (
        ("scripted", args.scripted_episodes, ["policy=scripted"]),
        ("dit", args.model_episodes, ["policy=dit", f"checkpoint={ft}"]),
        ("planner", args.model_episodes, ["policy=planner", f"checkpoint={ft}",
                                          f"planner.num_candidates={args.candidates}"]),
    ):
        evals[name] = out / "eval" / name
        stage(f"4/5 closed-loop evaluation: {name}", [
            "eval", "sim", *extra, f"eval.episodes={episodes}", "eval.seed=1000",
            f"eval.out={evals[name]}", "eval.image_size=[64,80]", f"eval.videos={str(name != 'scripted').lower()}",
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
