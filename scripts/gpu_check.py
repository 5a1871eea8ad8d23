"""GPU check: training throughput and model FLOPs utilisation of a preset (XL at 256×320 by default).

    python scripts/gpu_check.py                          # XL, bf16 autocast, CUDA, batch 8, 10 timed steps
    python scripts/gpu_check.py --preset tiny --device cpu --dtype fp32 --steps 2   # dry run of the code path
    torchrun --standalone --nproc-per-node 1 scripts/gpu_check.py --strategy fsdp2   # the same step under FSDP2

One Self-Flow training step = student forward + EMA-teacher forward (to round(0.7·depth) blocks) + backward +
AdamW. FLOPs per step are *counted* by ``torch.utils.flop_counter.FlopCounterMode`` on one step (matmuls and
attention, fwd + bwd), not estimated; MFU = counted FLOPs per second / the device's peak dense bf16 FLOP/s
(``--peak-tflops``, default by device name: H100/H200 989, A100 312).
"""

from __future__ import annotations

import argparse
import time

import torch

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="XL")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the student (train.compile=true)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--strategy", default="single", choices=("single", "fsdp2"),
                        help="fsdp2: shard every block as the trainer does (launch with torchrun; one rank will do)")
    args = parser.parse_args()

    from torch.utils.flop_counter import FlopCounterMode

    from worldmodel.models import Projector, build_model
    from worldmodel.objectives import EMA, FlowBatch, ObjectiveConfig, training_loss

    device = torch.device(args.device)
    if args.strategy == "fsdp2":
        import torch.distributed as dist

        from worldmodel.training.distributed import init_distributed, shard_fsdp2

        device = init_distributed(args.device).device
        if not dist.is_initialized():  # init_distributed starts a group only for several ranks
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(0)
    model = build_model(args.preset, checkpointing=args.checkpointing).to(device)
    cfg = model.cfg
    projector = Projector(cfg.hidden).to(device)
    ema = EMA(model, decay=0.9999, warmup=True)
    if args.strategy == "fsdp2":
        shard_fsdp2(model, model.blocks)
        shard_fsdp2(projector, torch.nn.ModuleList())
        shard_fsdp2(ema.model, ema.model.blocks)
    objective = ObjectiveConfig()
    params = [*model.parameters(), *projector.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    t_frames = cfg.context_frames + cfg.future_frames
    frames = torch.rand(args.batch, t_frames, 3, cfg.frame_height, cfg.frame_width, device=device) * 2 - 1
    actions = torch.rand(args.batch, cfg.future_frames, cfg.action_dim, device=device) * 2 - 1
    lang = torch.randn(args.batch, cfg.lang_dim, device=device)
    batch = FlowBatch.from_clip(frames, actions, lang, ["dynamics"] * args.batch, cfg.context_frames, cfg.patch)
    tokens = batch.layout.num_tokens * args.batch
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    net = torch.compile(model) if args.compile else model

    def step(module: torch.nn.Module = net) -> float:
        with autocast:
            loss = training_loss(module, batch, objective, ema.model, projector, gen).total
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if args.strategy == "fsdp2":  # as the trainer does: the no-grad teacher pass leaves root params gathered
            model.reshard()
            ema.model.reshard()
        ema.update(model)
        return float(loss.detach())

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    warm = time.perf_counter()
    step()  # warm-up (allocations, kernels; with --compile, the compilation)
    sync()
    warm = time.perf_counter() - warm
    with FlopCounterMode(display=False) as counter:  # counted eagerly: the same FLOPs, compiled or not
        step(model)
    flops = counter.get_total_flops()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    n_params = sum(p.numel() for p in model.parameters())
    print(f"preset {args.preset} ({args.strategy}): {n_params:,} params, {cfg.frame_height}x{cfg.frame_width}, "
          f"K={cfg.context_frames} F={cfg.future_frames}, {batch.layout.num_tokens} tokens/sample, "
          f"batch {args.batch}, {args.dtype}{', compiled' if args.compile else ''}, device {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'})")
    print(f"step {1000 * seconds:.1f} ms, {tokens / seconds:,.0f} tokens/s, {args.batch / seconds:.1f} samples/s, "
          f"loss {loss:.4f} (first step {warm:.1f} s{', compiling' if args.compile else ''})")
    peak = peak_tflops(device, args.peak_tflops)
    achieved = flops / seconds / 1e12
    mfu = f", MFU {100 * achieved / peak:.1f} % of {peak:.0f} TFLOP/s" if peak else ""
    print(f"counted {flops / 1e9:,.3f} GFLOP per step -> {achieved:.3f} TFLOP/s{mfu}")
    if device.type == "cuda":
        print(f"peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
