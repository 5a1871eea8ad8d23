#!/usr/bin/env bash
# GPU check (one GPU, a few minutes): XL at 256x320 in bf16 — training tokens/s and MFU, the same step under FSDP2
# (torchrun, one rank), a smoke run of `worldmodel finetune rt1` where its data stack is installed, and planning
# latency per decision.
#   bash scripts/gpu_check.sh [PRESET]        (default XL; run from the repository root, with the venv active or
#                                              .venv present)
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:-XL}"
PY="${PYTHON:-.venv/bin/python}"
export TF_CPP_MIN_LOG_LEVEL=2 WANDB_MODE=offline MUJOCO_GL="${MUJOCO_GL:-egl}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "== 1/3 training step: $PRESET, bf16, Self-Flow (tokens/s, MFU)"
timeout 240 "$PY" scripts/gpu_check.py --preset "$PRESET" --device cuda --dtype bf16 --batch 8 --steps 10

echo "== 2/3 FSDP2: the same step with every block sharded (torchrun, one rank)"
timeout 240 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 scripts/gpu_check.py --preset "$PRESET" \
    --device cuda --dtype bf16 --batch 8 --steps 10 --strategy fsdp2
if "$PY" -c "import hydra, tensorflow_datasets" 2>/dev/null; then
    echo "== 2b/3 smoke: worldmodel finetune rt1 model=$PRESET train.strategy=fsdp2 (3 steps, torchrun)"
    "$PY" - "$WORK/data" <<'PYEOF'
import sys
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import write_dataset
write_dataset((synthetic_episode(i, 12) for i in range(4)), sys.argv[1], "gpu_check", num_shards=1, progress=False)
PYEOF
    timeout 300 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m worldmodel.cli finetune rt1 \
        model="$PRESET" data=sim data.dir="$WORK/data" data.name=gpu_check logger=none run_dir="$WORK/run" \
        train.strategy=fsdp2 train.precision=bf16 train.batch_size=2 train.steps=3 train.log_every=1 \
        train.sample_every=0 train.ckpt_every=3 train.warmup_steps=1
    ls "$WORK/run/checkpoints"
else
    echo "== 2b/3 skipped: the CLI smoke needs hydra and tensorflow-datasets in this Python (pip install -e .)"
fi

echo "== 3/3 planning latency: $PRESET, bf16, 16 candidates, horizon 4, 4 sampling steps"
timeout 240 "$PY" scripts/bench_planner.py --presets "$PRESET" --device cuda --dtype bf16 --decisions 5
