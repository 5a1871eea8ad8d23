"""Shared fixtures: a small synthetic RLDS dataset and helpers to run the training commands on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldmodel.cli import main as cli_main
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import write_dataset

LENGTHS = (9, 12, 8, 11, 10, 7, 12, 9)  # 8 episodes, 5-10 clips each at K + F = 3
DATASET = "train_sim"


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A root holding ``train_sim/0.1.0`` (8 synthetic episodes in 2 shards, RT-1 schema)."""
    root = tmp_path_factory.mktemp("rlds")
    episodes = (synthetic_episode(i, n, image_hw=(32, 40)) for i, n in enumerate(LENGTHS))
    write_dataset(episodes, root, DATASET, num_shards=2, progress=False)
    return root


@pytest.fixture(scope="session")
def common(data_root) -> list[str]:
    """Overrides every test run shares: tiny model, smoke schedule, the synthetic data, no wandb, 1 thread."""
    return ["model=tiny", "train=smoke", "data=sim", f"data.dir={data_root}", f"data.name={DATASET}",
            "data.num_workers=0", "data.shuffle_buffer=16", "logger=none", "train.num_threads=1"]


def run_cli(*args: str) -> int:
    """Run ``worldmodel ARGS`` in this process; returns the exit code."""
    return cli_main([str(a) for a in args])


def cli_command() -> list[str]:
    """The console command as a subprocess argv prefix."""
    return [sys.executable, "-m", "worldmodel.cli"]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL="egl", TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline",
               OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_subprocess(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def losses(run_dir: Path) -> dict[int, float]:
    """Per-step total loss from ``metrics.jsonl``."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    return {r["step"]: r["loss/total"] for r in rows}
