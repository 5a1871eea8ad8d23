"""Training throughput through the real loop (``worldmodel finetune rt1``: data loader, verb mix, EMA, logging).

Each configuration runs as its own ``worldmodel`` process on a synthetic RLDS dataset (RT-1 schema) for
``--warmup + --steps`` steps; the first ``--warmup`` steps (start-up, first batches) are not timed.

    python scripts/bench_train.py                    # demo preset, its default clip, batch 16, Self-Flow and FM
    python scripts/bench_train.py --steps 50 --gpu-batch 8

On a CUDA machine it also measures the XL preset in bf16 at 256x320 (K=2, F=4); otherwise it prints "no GPU".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DATASET = "bench_sim"


def make_dataset(root: Path, episodes: int, length: int) -> None:
    """Synthetic episodes (moving squares) written with the real RLDS writer."""
    from worldmodel.data.synthetic import synthetic_episode
    from worldmodel.data.writer import write_dataset

    write_dataset((synthetic_episode(i, length) for i in range(episodes)), root, DATASET, num_shards=2,
                  progress=False)


def run_one(data_root: Path, run_dir: Path, overrides: list[str], warmup: int, steps: int) -> dict[str, float]:
    """One training process; returns median steps/s and tokens/s over the timed log windows."""
    args = [sys.executable, "-m", "worldmodel.cli", "finetune", "rt1", "data=sim", f"data.dir={data_root}",
            f"data.name={DATASET}", "logger=none", f"run_dir={run_dir}", f"train.steps={warmup + steps}",
            f"train.log_every={warmup}", "train.sample_every=0", f"train.ckpt_every={warmup + steps}",
            "train.warmup_steps=10", *overrides]
    env = dict(os.environ, WANDB_MODE="offline", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr[-3000:]}")
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    timed = [r for r in rows if r["step"] > warmup]
    return {"steps_per_s": statistics.median(r["steps_per_s"] for r in timed),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in timed),
            "loss": timed[-1]["loss/total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps (also the log window)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--gpu-batch", type=int, default=8, help="per-GPU batch of the XL measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    import torch

    configs = [("demo", "Self-Flow", ["model=demo", "objective=selfflow", f"train.batch_size={args.batch}",
                                      "train.device=cpu"]),
               ("demo", "FM", ["model=demo", "objective=fm", f"train.batch_size={args.batch}", "train.device=cpu"])]
    if args.threads:
        configs = [(p, o, [*ov, f"train.num_threads={args.threads}"]) for p, o, ov in configs]
    if torch.cuda.is_available():
        gpu = ["model=XL", "train.precision=bf16", f"train.batch_size={args.gpu_batch}", "train.device=cuda",
               "data.num_workers=6"]
        configs += [("XL", "Self-Flow", [*gpu, "objective=selfflow"]), ("XL", "FM", [*gpu, "objective=fm"])]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_dataset(root, episodes=24, length=24)
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
              + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
        print("| preset | objective | batch | steps/s | samples/s | tokens/s |")
        print("|---|---|---|---|---|---|")
        for i, (preset, objective, overrides) in enumerate(configs):
            r = run_one(root, Path(tmp) / f"run{i}", overrides, args.warmup, args.steps)
            batch = args.gpu_batch if preset == "XL" else args.batch
            print(f"| {preset} | {objective} | {batch} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.1f} | "
                  f"{r['tokens_per_s']:,.0f} |", flush=True)
    if not torch.cuda.is_available():
        print("no GPU: XL (bf16, 256x320) not measured")


if __name__ == "__main__":
    main()
