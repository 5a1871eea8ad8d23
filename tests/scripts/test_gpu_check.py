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
