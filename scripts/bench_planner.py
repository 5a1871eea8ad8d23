"""Milliseconds per planning decision for each method at the defaults, and the memory it takes.

Random weights (timing does not depend on training). The context is one 256 x 320 camera frame (RT-1's size),
resized to the preset's resolution inside the world model, as in closed-loop evaluation.

    python scripts/bench_planner.py                          # demo on CPU (+ XL when CUDA is present)
    python scripts/bench_planner.py --presets demo --threads 1 --decisions 10
    python scripts/bench_planner.py --presets XL --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import resource
import statistics
import time

import numpy as np
import torch
import yaml

from worldmodel import WorldModel
from worldmodel.planner import METHODS, PlannerConfig, make_planner


def bench(wm: WorldModel, config: PlannerConfig, decisions: int, warmup: int, dtype: str) -> dict[str, float]:
    planner = make_planner(wm, config)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (wm.context_frames, 256, 320, 3), dtype=np.uint8)
    language = rng.normal(size=512).astype(np.float32)
    cast = torch.autocast(wm.device.type, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    if wm.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(wm.device)
    timings, cpu = [], []
    with cast:
        for i in range(warmup + decisions):
            c0 = time.process_time()
            result = planner.plan(frames, language)
            if i >= warmup:
                timings.append(result.timing)
                cpu.append(1e3 * (time.process_time() - c0))
    out = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
    out["cpu_ms"] = statistics.median(cpu)
    if wm.device.type == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated(wm.device) / 2**20
    else:
        out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=None, help="default: demo (+ XL with CUDA)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--decisions", type=int, default=5, help="timed decisions per method (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default=None, help="default: cpu for demo, cuda for the GPU presets")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="bf16 autocast")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="PlannerConfig overrides, e.g. --set reimagine=false num_candidates=32")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = args.presets or (["demo", "XL"] if torch.cuda.is_available() else ["demo"])
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, GPU: {gpu}; {PlannerConfig(**overrides)}")
    print("| preset | device | method | ms/decision (wall) | CPU ms | propose | imagine | score | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in presets:
        device = args.device or ("cpu" if preset in ("tiny", "demo") else "cuda")
        wm = WorldModel.random(preset, seed=0, device=device)
        for method in args.methods:
            r = bench(wm, PlannerConfig(**{**overrides, "method": method}), args.decisions, args.warmup, args.dtype)
            print(f"| {preset} | {device} {args.dtype} | {method} | {r['total_ms']:.0f} | {r['cpu_ms']:.0f} | "
                  f"{r['propose_ms']:.0f} | {r['imagine_ms']:.0f} | {r['score_ms']:.0f} | {r['peak_mib']:.0f} |",
                  flush=True)
        del wm
        if device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
