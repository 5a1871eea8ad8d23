"""Self-Flow vs vanilla flow matching: same model, data, steps and seeds; offline and closed-loop measures.

For every objective (``selfflow``, ``fm``) and seed, one ``worldmodel finetune rt1 data=sim`` run from scratch
(train.seed = data.seed = the seed, so the two objectives see the same initial weights and the same batches),
checkpointed every ``--eval-every`` steps. Then, per run:

* validation flow loss over steps: the vanilla flow-matching loss of the ``dynamics`` and ``policy`` verbs on
  held-out episodes (a separate ``worldmodel data sim`` set with other seeds), same times and noise for every
  checkpoint of every run (``worldmodel.evaluation.imagination.validation_flow_loss``), EMA weights;
* imagination quality of the final checkpoint: PSNR / SSIM of ``dynamics`` rollouts (``--horizon`` steps,
  open-loop, real actions) against the real held-out frames;
* closed-loop success of the ``dit`` and ``planner`` policies on the six tasks (``worldmodel eval sim``,
  the same episode seeds for every run).

Writes ``<out>/results.json``, ``<out>/results.md`` (tables) and ``<out>/compare_objectives.png`` (plot); the
summary, table and plot are :mod:`worldmodel.evaluation.compare`, this script only runs the commands.
Every stage skips what an earlier invocation already finished, so a stopped comparison is continued by running
the same command again. Runs go ``--jobs`` at a time, one torch thread each; their logs are in ``<out>/logs``.

    python scripts/compare_objectives.py --out outputs/compare --seeds 0 1 --steps 2500
    python scripts/compare_objectives.py --out /tmp/cmp --steps 20 --episodes 12 --val-episodes 6 \
        --eval-every 10 --dit-episodes 1 --planner-episodes 0 --model tiny       # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from worldmodel.evaluation.compare import CompareSettings, plot, run_name, summarize, write_table

_PRINT = threading.Lock()


def log(message: str) -> None:
    with _PRINT:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def worldmodel(args: list[str], logfile: Path) -> float:
    """Run ``worldmodel ARGS`` with its output in ``logfile``; return minutes; exit on failure."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(logfile, "w") as f:
        f.write(f"$ worldmodel {' '.join(args)}\n")
        f.flush()
        rc = subprocess.call([sys.executable, "-m", "worldmodel.cli", *args], stdout=f, stderr=subprocess.STDOUT)
    minutes = (time.perf_counter() - start) / 60
    if rc != 0:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-15:])
        sys.exit(f"compare_objectives: `worldmodel {' '.join(args)}` failed (exit {rc}); log {logfile}:\n{tail}")
    return minutes


def parallel(jobs: list[tuple[str, list[str], Path]], workers: int) -> dict[str, float]:
    """Run (name, args, logfile) jobs ``workers`` at a time; return minutes per name."""
    def one(job: tuple[str, list[str], Path]) -> tuple[str, float]:
        name, args, logfile = job
        log(f"start {name}  (log: {logfile})")
        minutes = worldmodel(args, logfile)
        log(f"done  {name}  in {minutes:.1f} min")
        return name, minutes

    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, jobs))


def dataset_ready(root: Path) -> bool:
    return any(root.glob("*/*/dataset_info.json"))


# ------------------------------------------------------------------------------------------------- stages
def make_data(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    train, val = out / "data" / "train", out / "data" / "val"
    common = [f"image_size=[{args.height},{args.width}]", f"policy.noise={args.noise}",
              "workers=2", "progress=false", "overwrite=true"]
    for root, episodes, seed in ((train, args.episodes, 0), (val, args.val_episodes, 100_000)):
        if dataset_ready(root):
            log(f"data: {root} exists, kept")
            continue
        log(f"data: {episodes} episodes (seeds {seed}..{seed + episodes - 1}) -> {root}")
        worldmodel(["data", "sim", f"out={root}", f"episodes={episodes}", f"seed={seed}", *common],
                   out / "logs" / f"data_{root.name}.log")
    return train, val


def train_runs(args: argparse.Namespace, out: Path, data: Path) -> dict[str, float]:
    from worldmodel.training.checkpoint import checkpoint_name, latest_checkpoint

    jobs = []
    for seed in args.seeds:
        for objective in args.objectives:
            name = run_name(objective, seed)
            run_dir = out / "runs" / name
            latest = latest_checkpoint(run_dir)
            if latest is not None and latest.name == checkpoint_name(args.steps):
                log(f"train: {name} finished earlier, kept")
                continue
            jobs.append((f"train {name}", [
                "finetune", "rt1", "data=sim", f"data.dir={data}", f"data.seed={seed}", f"model={args.model}",
                f"objective={objective}", "train=demo", f"train.seed={seed}", f"train.steps={args.steps}",
                f"train.ckpt_every={args.eval_every}", "train.keep_last=1000", f"train.sample_every={args.steps}",
                "train.num_threads=1", "logger=none", f"run_dir={run_dir}", "resume=auto"],
                out / "logs" / f"train_{name}.log"))
    return parallel(jobs, args.jobs)


def offline_metrics(args: argparse.Namespace, out: Path, val: Path) -> dict[str, dict[str, Any]]:
    """Validation flow loss over checkpoints and imagination quality of the last; cached per run."""
    import numpy as np
    import torch

    from worldmodel.data.tf_compat import import_tensorflow
    from worldmodel.evaluation.imagination import heldout_clips, imagination_quality, validation_flow_loss
    from worldmodel.training.checkpoint import list_checkpoints, load_checkpoint
    from worldmodel.world_model import WorldModel

    import_tensorflow()
    torch.set_num_threads(max(1, args.jobs))
    results = {}
    for seed in args.seeds:
        for objective in args.objectives:
            name = run_name(objective, seed)
            run_dir = out / "runs" / name
            cache = run_dir / "offline_metrics.json"
            if cache.is_file():
                results[name] = json.loads(cache.read_text())
                log(f"offline: {name} measured earlier, kept")
                continue
            start = time.perf_counter()
            *earlier, last = list_checkpoints(run_dir)
            final = load_checkpoint(last)
            cfg, stats = final.model_config, final.action_stats
            size = (cfg.frame_height, cfg.frame_width)
            where = {"stride": args.val_stride, "max_clips": args.val_clips, "name": final.config.data.name}
            flow_clips = heldout_clips(val, stats, cfg.context_frames, cfg.future_frames, size, **where)
            curve = []
            for loaded in (*map(load_checkpoint, earlier), final):
                row = {"step": loaded.step}
                for verb in ("dynamics", "policy"):
                    row[verb] = validation_flow_loss(loaded.model, flow_clips, verb, seed=12345)
                curve.append(row)
            wm = WorldModel(final.model, stats, final.config, final.progress_head)
            image_clips = heldout_clips(val, stats, cfg.context_frames, args.horizon, size, **where)
            quality = imagination_quality(wm, image_clips, steps=args.imagine_steps, seed=12345)
            real, fake = quality.pop("examples")
            np.savez_compressed(run_dir / "imagination_example.npz", real=real, imagined=fake)
            results[name] = {"objective": objective, "seed": seed, "curve": curve, "imagination": quality,
                             "n_val_clips": int(flow_clips["frames"].shape[0])}
            cache.write_text(json.dumps(results[name], indent=1))
            log(f"offline: {name}: final val flow (dynamics) {curve[-1]['dynamics']['flow']:.4f}, "
                f"PSNR {quality['psnr']:.2f} dB, SSIM {quality['ssim']:.3f} "
                f"({(time.perf_counter() - start) / 60:.1f} min)")
    return results


def closed_loop(args: argparse.Namespace, out: Path) -> dict[str, dict[str, Path]]:
    jobs, evals = [], {}
    for seed in args.seeds:
        for objective in args.objectives:
            name = run_name(objective, seed)
            evals[name] = {}
            for policy, episodes, extra in (
                ("dit", args.dit_episodes, []),
                ("planner", args.planner_episodes, [f"planner.num_candidates={args.candidates}"]),
            ):
                if episodes <= 0:
                    continue
                target = out / "eval" / name / policy
                evals[name][policy] = target
                if (target / "eval_info.json").is_file():
                    log(f"eval: {name} {policy} finished earlier, kept")
                    continue
                jobs.append((f"eval {name} {policy}", [
                    "eval", "sim", f"policy={policy}", f"checkpoint={out / 'runs' / name}", *extra,
                    f"eval.episodes={episodes}", f"eval.seed={args.eval_seed}",
                    f"eval.out={target}", f"eval.image_size=[{args.height},{args.width}]", "eval.videos=false",
                    "eval.workers=1"], out / "logs" / f"eval_{name}_{policy}.log"))
    parallel(jobs, args.jobs)
    return evals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/compare")
    parser.add_argument("--objectives", nargs="+", default=["selfflow", "fm"], choices=["selfflow", "fm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--model", default="demo", help="model preset")
    parser.add_argument("--steps", type=int, default=2500, help="fine-tuning steps per run")
    parser.add_argument("--eval-every", type=int, default=250, help="checkpoint (and validation) interval")
    parser.add_argument("--episodes", type=int, default=120, help="training episodes (seeds 0..N-1)")
    parser.add_argument("--val-episodes", type=int, default=24, help="held-out episodes (seeds 100000..)")
    parser.add_argument("--noise", type=float, default=0.1, help="scripted experts' action noise in the data")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=80)
    parser.add_argument("--val-clips", type=int, default=128)
    parser.add_argument("--val-stride", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=4, help="future steps imagined for PSNR / SSIM")
    parser.add_argument("--imagine-steps", type=int, default=4, help="sampler steps per chunk for PSNR / SSIM")
    parser.add_argument("--dit-episodes", type=int, default=10, help="per task and run")
    parser.add_argument("--planner-episodes", type=int, default=2, help="per task and run")
    parser.add_argument("--candidates", type=int, default=8, help="planner candidates per decision")
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    args = parser.parse_args()
    for key, value in (("MUJOCO_GL", "egl"), ("WANDB_MODE", "offline"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(key, value)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    command = "python scripts/compare_objectives.py " + " ".join(sys.argv[1:])
    start = time.perf_counter()
    log(f"1/5 data -> {out / 'data'}")
    train, val = make_data(args, out)
    log(f"2/5 training {len(args.objectives) * len(args.seeds)} runs, {args.steps} steps each")
    minutes = train_runs(args, out, train)
    times_file = out / "train_minutes.json"
    minutes = {**(json.loads(times_file.read_text()) if times_file.is_file() else {}), **minutes}
    times_file.write_text(json.dumps(minutes, indent=1))
    log("3/5 validation flow loss and imagination quality on held-out episodes")
    offline = offline_metrics(args, out, val)
    log("4/5 closed-loop evaluation (dit, planner)")
    evals = closed_loop(args, out)
    log("5/5 summary")
    settings = CompareSettings.from_options(args)
    summary = summarize(settings, offline, evals, minutes)
    summary["command"] = command
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    png = plot(summary, settings, out)
    table = write_table(summary, settings, out, command)
    log(f"done in {(time.perf_counter() - start) / 60:.1f} min: {table}, {png}")
    print(table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
