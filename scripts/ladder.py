"""The oracle ladder on one model: the same proposals, ranked by nobody, the true simulator, or the learned scorer.

Rungs (``planner.scorer``, docs/planner.md "Where planning loses"), every one with ``planner.diagnostics`` so that
each decision's scores are ranked against the true simulator's:

* ``dit``              the model's own policy (``policy=dit``; rung a): what every other rung is paired against
* ``none``             the first proposal: the policy verb alone (rung a, with the planner's proposals)
* ``oracle``           true futures, true progress: the upper bound of best-of-N over these proposals (b)
* ``learned_on_true``  true futures, learned scorer: isolates the scorer (c)
* ``learned``          imagined futures, learned scorer: the planner (d)
* ``scorer``           as ``learned``, with the head re-trained by ``scripts/train_scorer.py`` (``--scorer-checkpoint``)

Evaluations run on held-out seeds (default 10000+) and are kept, episode by episode (``eval.resume=true``), so
rerunning picks up where it stopped; the table (success per task, ranking correlations, latency) is
``<out>/report/README.md`` (``build_report``).

    python scripts/ladder.py --checkpoint checkpoints/reference [--episodes 10] [--rungs none oracle learned]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

RUNGS = ("dit", "none", "oracle", "learned_on_true", "learned", "scorer")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--scorer-checkpoint", default=None, help="the re-trained scorer's checkpoint (rung scorer)")
    parser.add_argument("--out", default="outputs/ladder")
    parser.add_argument("--rungs", nargs="+", default=list(RUNGS[:5]), choices=RUNGS)
    parser.add_argument("--episodes", type=int, default=10, help="held-out episodes per task")
    parser.add_argument("--seed", type=int, default=10000)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: all six")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--diagnostics", action=argparse.BooleanOptionalAction, default=True,
                        help="rank every decision against the true simulator (costs N rollouts per decision)")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides, e.g. planner.num_candidates=8")
    args = parser.parse_args()
    for key, value in (("MUJOCO_GL", "egl"), ("WANDB_MODE", "offline"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(key, value)
    if "scorer" in args.rungs and not args.scorer_checkpoint:
        parser.error("rung scorer needs --scorer-checkpoint")
    out = Path(args.out)
    evals = {}
    for rung in args.rungs:
        eval_dir = out / "evals" / rung
        ckpt = args.scorer_checkpoint if rung == "scorer" else args.checkpoint
        scorer = "learned" if rung == "scorer" else rung
        tasks = [f"eval.tasks=[{','.join(args.tasks)}]"] if args.tasks else []
        policy = ["policy=dit"] if rung == "dit" else [
            "policy=planner", f"planner.scorer={scorer}", f"planner.diagnostics={str(args.diagnostics).lower()}"]
        cmd = ["eval", "sim", *policy, f"checkpoint={ckpt}", f"eval.episodes={args.episodes}",
               f"eval.seed={args.seed}", f"eval.workers={args.workers}", f"eval.out={eval_dir}", "eval.resume=true",
               *tasks, *args.overrides]  # the planner group is always composed; policy=dit ignores it
        if not (eval_dir / "eval_info.json").is_file():
            print("$ worldmodel " + " ".join(cmd), flush=True)
            if subprocess.call([sys.executable, "-m", "worldmodel.cli", *cmd]) != 0:
                sys.exit(f"ladder: rung {rung} failed")
        evals[rung] = eval_dir
    from worldmodel.evaluation.report import build_report

    command = ["python scripts/ladder.py", f"--checkpoint {args.checkpoint}", f"--out {args.out}",
               f"--episodes {args.episodes}", f"--seed {args.seed}", f"--workers {args.workers}",
               f"--rungs {' '.join(args.rungs)}", *([f"--tasks {' '.join(args.tasks)}"] if args.tasks else []),
               *([f"--scorer-checkpoint {args.scorer_checkpoint}"] if args.scorer_checkpoint else []),
               *([] if args.diagnostics else ["--no-diagnostics"]),
               *(["--", *args.overrides] if args.overrides else [])]  # after "--": --tasks / --rungs take many
    notes = [f"`{' '.join(command)}`"]
    print(f"report: {build_report(out / 'report', evals, {}, notes, title='The oracle ladder')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
