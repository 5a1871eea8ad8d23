"""The GPU check's training-step path runs (on the CPU with the tiny preset) and counts real FLOPs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_on_cpu():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--preset", "tiny", "--device",
                          "cpu", "--dtype", "fp32", "--steps", "1", "--batch", "2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "tokens/s" in out
    gflop = float(re.search(r"counted ([\d,.]+) GFLOP", out).group(1).replace(",", ""))
    # The student's block matmuls alone (qkv + proj 4·D², MLP 8·D² per token, x2 FLOPs, x3 for fwd + bwd) over
    # depth 4 blocks, width D = 64, 2 samples x 62 tokens: a lower bound of what the counter must see.
    assert gflop * 1e9 > 3 * 2 * 12 * 64**2 * 4 * 2 * 62


def test_gpu_check_fsdp2_step_matches_the_plain_step():
    """One rank under torchrun with every block sharded: the same seeded step gives the same loss."""
    common = ["--preset", "tiny", "--device", "cpu", "--dtype", "fp32", "--steps", "1", "--batch", "2"]
    script = str(ROOT / "scripts" / "gpu_check.py")
    plain = subprocess.run([sys.executable, script, *common], capture_output=True, text=True, timeout=300,
                           check=True).stdout
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                              script, *common, "--strategy", "fsdp2"],
                             capture_output=True, text=True, timeout=300, check=True).stdout
    assert "(fsdp2)" in sharded
    loss = [float(re.search(r"loss ([\d.]+)", out).group(1)) for out in (plain, sharded)]
    assert abs(loss[0] - loss[1]) < 1e-3, loss
