"""Fault injection: a tiny dataset and a tiny fine-tuning run made once per session, copied and damaged per test.

Every test here is a row of issue 12's table (or a kill -9 at a chosen point of a write); see the README's
reliability paragraph. Runs are in-process (``worldmodel.cli.main``) except where a process must be killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from worldmodel.cli import main as cli_main
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import Episode, write_dataset

NAME = "rel_sim"
LENGTHS = (9, 12, 8, 11)
STEPS = 4  # the base run: checkpoints at steps 2 and 4


def episodes(override: Callable[[int, Episode], None] | None = None) -> Iterator[Episode]:
    """The session dataset's episodes, each optionally damaged in place by ``override(index, episode)``."""
    for i, n in enumerate(LENGTHS):
        ep = synthetic_episode(i, n, image_hw=(32, 40))
        if override is not None:
            override(i, ep)
        yield ep


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A root holding ``rel_sim/0.1.0``: 4 synthetic episodes in 2 shards (RT-1 schema)."""
    root = tmp_path_factory.mktemp("rel_data")
    write_dataset(episodes(), root, NAME, num_shards=2, progress=False)
    return root


def overrides(root: Path, run_dir: Path) -> list[str]:
    """A tiny fine-tuning run on ``root`` (the session dataset unless told otherwise)."""
    return ["model=tiny", "train=smoke", "data=sim", f"data.dir={root}", f"data.name={NAME}", "data.num_workers=0",
            "data.shuffle_buffer=16", "logger=none", "train.num_threads=1", "train.sample_every=0",
            f"train.steps={STEPS}", "train.ckpt_every=2", "train.keep_last=3", f"run_dir={run_dir}"]


@pytest.fixture(scope="session")
def base_run(data_root, tmp_path_factory) -> Path:
    """A finished 4-step fine-tuning run with complete checkpoints at steps 2 and 4."""
    run = tmp_path_factory.mktemp("rel_base") / "run"
    assert cli_main(["finetune", "rt1", *overrides(data_root, run)]) == 0
    return run


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    """A private copy of the base run, to damage."""
    dest = tmp_path / "run"
    shutil.copytree(base_run, dest)
    return dest


def ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step:08d}"


def losses(run: Path) -> dict[int, float]:
    """Per-step total loss from ``metrics.jsonl`` (the last row of a step wins: a resumed run's)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    return {r["step"]: r["loss/total"] for r in rows}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> SHA-256), to prove that nothing changed on disk."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    """``worldmodel ARGS`` in this process: (exit code, stdout, stderr)."""
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The CLI's single ``worldmodel: error:`` line (asserting there is exactly one and no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("worldmodel: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL="egl", TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline", OMP_NUM_THREADS="1",
               **extra)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start(code: str, args: list[str], log: Path, **env: str) -> subprocess.Popen:
    """``python -c CODE ARGS`` with the test environment; stdout and stderr go to the file ``log`` (a pipe
    nobody reads could fill up and stall the process before the point the test waits for)."""
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-c", code, *args], env=subprocess_env(**env),
                                stdout=f, stderr=subprocess.STDOUT)


@pytest.fixture
def read_only_dir(tmp_path) -> Iterator[Path]:
    """A directory nobody may write into: ``chmod 555``, or the immutable attribute for root (who ignores
    permissions); skipped where neither is possible."""
    path = tmp_path / "read_only"
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    else:
        path.chmod(0o555)
    if os.access(path, os.W_OK):
        pytest.skip("cannot make a read-only directory here")
    yield path
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    path.chmod(0o755)


def set_value(ep: Episode, key: str, index: tuple[int, ...], value: float) -> None:
    """Damage one value of an episode array (e.g. ``actions`` or ``language``)."""
    arr = np.array(getattr(ep, key))
    arr[index] = value
    setattr(ep, key, arr)
