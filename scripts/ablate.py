"""One lever at a time from the reference recipe: train each variant, evaluate ``dit`` on held-out seeds, report.

Every variant is ``+experiment=reference`` plus its overrides, on the same data and for the same steps; runs
continue (``resume=auto``) and evaluations keep every finished episode (``eval.resume=true``), so rerunning the
command picks up where it stopped.
The table (success per task and overall with 95 % Wilson intervals) is ``<out>/report/README.md``, built by
:func:`worldmodel.evaluation.report.build_report` from the ``eval_info.json`` files.

    python scripts/ablate.py --data outputs/data600 --init outputs/reference/keypoints [--out outputs/ablate]
        [--steps 2000] [--variants ...]

The reference recipe fine-tunes from a keypoint-pretrained checkpoint (``--init``, stage 3 of
``scripts/reference.py``). ``F6`` starts from it too (only the keypoint head's chunk-sized output layer starts
fresh); ``patch8`` changes the patch embedding's shape and is refused by the trainer with the parameter it could
not load: give it an init trained with that setting. ``episodes120`` / ``episodes300`` beside ``reference`` (all
of ``--data``) are the fine-tuning stage's learning curve; the init's base and keypoint stages saw every episode.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

POLICY_ONLY = ["objective.verb_probs.policy=1", "objective.verb_probs.dynamics=0", "objective.verb_probs.inverse=0",
               "objective.verb_probs.video=0"]
VARIANTS: dict[str, list[str]] = {
    "reference": [],
    "no_instruction_tokens": ["model.instruction_tokens=0"],
    "no_state_tokens": ["model.state_dim=0"],
    "no_tokens": ["model.instruction_tokens=0", "model.state_dim=0"],
    "F6": ["model.future_frames=6"],
    "patch8": ["model.patch=8"],
    "episodes120": ["data.max_episodes=120", "data.stats_max_episodes=120"],
    "episodes300": ["data.max_episodes=300", "data.stats_max_episodes=300"],
    "fm": ["objective.selfflow=false"],  # the recipe's own objective since the tenth session (a no-op row now)
    "selfflow": ["objective.selfflow=true"],
    "action_only": ["model.future_frame_tokens=false", *POLICY_ONLY],
}


def worldmodel(args: list[str]) -> None:
    print("$ worldmodel " + " ".join(args), flush=True)
    if subprocess.call([sys.executable, "-m", "worldmodel.cli", *args]) != 0:
        sys.exit(f"ablate: `worldmodel {' '.join(args)}` failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the RLDS root written by `worldmodel data sim`")
    parser.add_argument("--out", default="outputs/ablate")
    parser.add_argument("--init", default=None, help="checkpoint every variant starts from (init=)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--episodes", type=int, default=30, help="held-out episodes per task")
    parser.add_argument("--seed", type=int, default=10000, help="first held-out episode seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report-only", action="store_true",
                        help="train and evaluate nothing: the report of the variants already evaluated")
    args = parser.parse_args()
    for key, value in (("MUJOCO_GL", "egl"), ("WANDB_MODE", "offline"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(key, value)
    out = Path(args.out)
    evals, runs = {}, {}
    for name in args.variants:
        run_dir, eval_dir = out / "runs" / name, out / "evals" / name
        if args.report_only:
            if (eval_dir / "eval_info.json").is_file():
                evals[name], runs[name] = eval_dir, run_dir
            continue
        worldmodel(["finetune", "rt1", "+experiment=reference", "data=sim", f"data.dir={args.data}", "logger=none",
                    f"train.steps={args.steps}", f"run_dir={run_dir}", "resume=auto",
                    *([f"init={args.init}", "init_leave_out=true"] if args.init else []), *VARIANTS[name]])
        if not (eval_dir / "eval_info.json").is_file():
            worldmodel(["eval", "sim", "policy=dit", f"checkpoint={run_dir}", f"eval.episodes={args.episodes}",
                        f"eval.seed={args.seed}", f"eval.workers={args.workers}", f"eval.out={eval_dir}",
                        "eval.resume=true"])
        evals[name], runs[name] = eval_dir, run_dir
    if not evals:
        sys.exit(f"ablate: no evaluated variant under {out / 'evals'}")
    from worldmodel.evaluation.report import build_report

    notes = [f"`python scripts/ablate.py --data {args.data} --init {args.init} --steps {args.steps} --episodes "
             f"{args.episodes} --seed {args.seed}`: every row is `+experiment=reference` fine-tuned for {args.steps} "
             f"steps from the same init on the same data, then `dit` on {args.episodes} episodes per task from seed "
             f"{args.seed} (never trained on).", "", "| variant | overrides |", "|---|---|",
             *(f"| {name} | {' '.join(f'`{o}`' for o in VARIANTS[name]) or '(the recipe)'} |" for name in evals)]
    report = build_report(out / "report", evals, runs, notes=notes, title="Ablations of the reference recipe")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
