"""The same command under torchrun: 2 CPU ranks (gloo; DDP and FSDP2) train a few steps on different data."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from tests.training.conftest import losses, run_subprocess
from worldmodel.data.clips import shard_range
from worldmodel.training import latest_checkpoint, load_checkpoint


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_ranks_on_cpu(strategy: str, common, tmp_path) -> None:
    run = tmp_path / strategy
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "worldmodel.cli", "finetune", "rt1", *common, "train.steps=4", "train.ckpt_every=2",
           "train.sample_every=2", f"train.strategy={strategy}", f"run_dir={run}"]
    proc = run_subprocess(cmd, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done: step 4") == 1  # only rank 0 reports
    assert sorted(losses(run)) == [1, 2, 3, 4]  # only rank 0 writes metrics (no duplicate rows)

    layout = json.loads((run / "data_layout.json").read_text())
    assert layout["world_size"] == 2
    episodes = [{ep for ep, _ in ids} for ids in layout["first_batch_clip_ids"]]
    assert episodes[0] and episodes[1] and not episodes[0] & episodes[1]  # ranks see different episodes
    for rank, eps in enumerate(episodes):
        lo, hi = shard_range(8, rank, 2)
        assert eps <= set(range(lo, hi))

    state = torch.load(latest_checkpoint(run) / "trainer_state.pt", weights_only=True)
    positions = [r["data"]["positions"] for r in state["ranks"]]
    assert positions == [{"0": [0, 16]}, {"1": [0, 16]}]  # each rank consumed 4 steps x 4 clips of its shard
    loaded = load_checkpoint(run)
    assert loaded.meta["world_size"] == 2
    assert loaded.progress_head is not None  # the head is trained (gradients synced) and gathered into the checkpoint
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("progress/mae" in r for r in rows)
    assert (run / "samples" / "step_00000004.png").is_file()
