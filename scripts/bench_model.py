"""Time one training step (forward + backward + AdamW + EMA update) per preset, with and without Self-Flow.

Each configuration runs in its own process so that the reported peak memory (max RSS) is its own.

    python scripts/bench_model.py                       # demo and S, batch 16, default clips
    python scripts/bench_model.py --presets demo --steps 30 --set hidden=256 depth=4
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from worldmodel.models import Projector, VerbSampler, build_model, count_parameters, get_config
from worldmodel.objectives import EMA, FlowBatch, ObjectiveConfig, training_loss


def _parse_sets(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, value = item.split("=", 1)
        out[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return out


def run_one(
    preset: str, selfflow: bool, batch: int, steps: int, warmup: int, sets: dict[str, object]
) -> dict:
    """Benchmark one configuration in this process; returns a result row."""
    torch.manual_seed(0)
    cfg = get_config(preset, **sets)
    model = build_model(cfg).train()
    projector = Projector(cfg.hidden)
    ema = EMA(model, decay=0.999)
    params = list(model.parameters()) + list(projector.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    obj = ObjectiveConfig(selfflow=selfflow)
    verbs = VerbSampler(obj.verb_probs)
    gen = torch.Generator().manual_seed(0)
    t_frames = cfg.context_frames + cfg.future_frames
    frames = torch.rand(batch, t_frames, cfg.channels, cfg.frame_height, cfg.frame_width) * 2 - 1
    actions = torch.randn(batch, cfg.future_frames, cfg.action_dim)
    lang = torch.randn(batch, cfg.lang_dim)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        fb = FlowBatch.from_clip(
            frames, actions, lang, verbs.sample(batch, True, gen), cfg.context_frames, cfg.patch
        )
        loss = training_loss(model, fb, obj, ema.model, projector, gen)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        ema.update(model)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    tokens = (t_frames * cfg.grid[0] * cfg.grid[1]) + cfg.future_frames
    return {
        "preset": preset,
        "params": count_parameters(cfg),
        "clip": f"K={cfg.context_frames} F={cfg.future_frames} "
        f"{cfg.frame_height}x{cfg.frame_width} p{cfg.patch}",
        "tokens": tokens,
        "hidden_depth": f"{cfg.hidden}x{cfg.depth}",
        "checkpointing": cfg.checkpointing,
        "selfflow": selfflow,
        "ms_per_step": 1000 * statistics.median(times),
        "min_ms_per_step": 1000 * min(times),
        "cpu_ms_per_step": 1000 * statistics.median(cpu_times),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["demo", "S"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="ModelConfig overrides, e.g. hidden=256")
    parser.add_argument("--selfflow", choices=["both", "on", "off"], default="both")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        preset, sf = args.child.split(":")
        row = run_one(preset, sf == "1", args.batch, args.steps, args.warmup, _parse_sets(args.set))
        print(json.dumps(row))
        return
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.selfflow]
    print(
        "| preset | params | D x depth | clip | tokens | Self-Flow | ms/step (median / min) | CPU ms/step "
        "| peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        for sf in modes:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                f"{preset}:{int(sf)}",
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
                "--set",
                *args.set,
            ]
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            ckpt = " (ckpt)" if row["checkpointing"] else ""
            print(
                f"| {preset} | {row['params']:,} | {row['hidden_depth']}{ckpt} | {row['clip']} "
                f"| {row['tokens']} "
                f"| {'on' if sf else 'off'} | {row['ms_per_step']:.0f} / {row['min_ms_per_step']:.0f} "
                f"| {row['cpu_ms_per_step']:.0f} | {row['peak_rss_mib']:.0f} |",
                flush=True,
            )
    print(
        f"\nbatch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
        "CPU ms = process CPU time (all threads)"
    )


if __name__ == "__main__":
    main()
