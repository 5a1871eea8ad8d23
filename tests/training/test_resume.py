"""Exact resume after SIGKILL, SIGTERM -> checkpoint and exit, atomic checkpoints never picked up half-written."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import cli_command, losses, run_cli, subprocess_env
from worldmodel.training import latest_checkpoint, list_checkpoints
from worldmodel.training.checkpoint import PROGRESS_FILE, CheckpointContents, write_checkpoint

STEPS = 16
# Fine-tuning (verb mix incl. video micro-batches, Self-Flow, EMA, warm-up) exercises every RNG stream.
RESUME = ["train.sample_every=0", "train.ckpt_every=3", "train.keep_last=3", f"train.steps={STEPS}"]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*cli_command(), *args], env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and max(losses(metrics.parent), default=0) >= step:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no step {step} within {timeout} s")


def test_sigkill_then_resume_gives_identical_losses(common, tmp_path) -> None:
    cmd = ["finetune", "rt1", *common, *RESUME]
    killed = tmp_path / "killed"
    proc = _start([*cmd, f"run_dir={killed}"])
    _wait_for_step(proc, killed, 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    good = latest_checkpoint(killed)
    assert good is not None and 3 <= int(good.name.split("_")[1]) < STEPS
    # a half-written temp dir and an incomplete step dir with higher steps must never be picked up
    root = killed / "checkpoints"
    shutil.copytree(good, root / ".tmp-step_00000099-1")
    partial = root / "step_00000098"
    shutil.copytree(good, partial)
    (partial / "meta.json").unlink()

    assert run_cli(*cmd, f"run_dir={killed}", "resume=auto") == 0
    assert not (root / ".tmp-step_00000099-1").exists()
    full = tmp_path / "full"
    assert run_cli(*cmd, f"run_dir={full}") == 0

    resumed, reference = losses(killed), losses(full)
    assert sorted(resumed) == list(range(1, STEPS + 1)) == sorted(reference)
    assert resumed == reference  # bit-identical per-step losses
    a, b = (torch.load(latest_checkpoint(r) / "trainer_state.pt", weights_only=True) for r in (killed, full))
    assert a["ranks"][0]["data"] == b["ranks"][0]["data"]  # same data-stream position at the end
    # the progress head (trained from the EMA model's features) resumes exactly too
    ha, hb = (load_file(str(latest_checkpoint(r) / PROGRESS_FILE)) for r in (killed, full))
    assert ha.keys() == hb.keys() and all(torch.equal(ha[k], hb[k]) for k in ha)


def test_sigterm_saves_checkpoint_and_exits(common, tmp_path) -> None:
    run = tmp_path / "run"
    proc = _start(["pretrain", *common, "train.sample_every=0", "train.ckpt_every=1000", "train.steps=1000",
                   f"run_dir={run}"])
    _wait_for_step(proc, run, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by signal SIGTERM" in err
    ckpt = latest_checkpoint(run)
    step = json.loads((ckpt / "meta.json").read_text())["step"]
    assert 2 <= step < 1000 and max(losses(run)) == step


def _contents(step: int) -> CheckpointContents:
    w = {"w": torch.full((2, 2), float(step))}
    return CheckpointContents(step, w, w, w, {"state": {}}, {"step": step}, {"mode": "test"}, "a: 1\n")


def test_checkpoint_write_is_atomic_and_pruned(tmp_path) -> None:
    for step in (1, 2, 3):
        write_checkpoint(tmp_path, _contents(step), keep_last=2)
    assert [c.name for c in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]

    def crash(tmp: Path) -> None:
        raise KeyboardInterrupt  # killed after writing every file, before the rename

    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path, _contents(4), keep_last=2, before_rename=crash)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert any(p.name.startswith(".tmp-step_00000004") for p in (tmp_path / "checkpoints").iterdir())
