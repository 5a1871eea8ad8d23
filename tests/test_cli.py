"""The ``worldmodel`` command: bad input is one line on stderr and exit code 2, from every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldmodel.cli import compose

ROOT = Path(__file__).resolve().parents[1]
# A missing dataset is found inside the command (training/commands.py raises UserError), not by hydra: under
# `python -m` the CLI module is `__main__`, which is exactly where a second UserError class used to appear.
MISSING_DATA = ["finetune", "rt1", "model=tiny", "train=smoke", "logger=none", "data=sim", "data.dir=/nonexistent"]
ENTRIES = {
    "console script": [str(Path(sys.executable).with_name("worldmodel"))],
    "python -m": [sys.executable, "-m", "worldmodel.cli"],
}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("worldmodel: error:")]


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("args", [MISSING_DATA, ["finetune", "rt1", "train.steps=abc"]], ids=["data", "type"])
def test_bad_input_is_one_line_and_exit_2(entry: str, args: list[str], tmp_path: Path) -> None:
    out = _run([*ENTRIES[entry], *args], tmp_path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert len(_error_lines(out.stderr)) == 1 and out.stderr.strip() == _error_lines(out.stderr)[0]


def test_under_torchrun_each_rank_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    """torchrun itself turns any failed worker into its own exit code 1 and a report; the worker's own
    behaviour is ours: one line, exit code 2 (torchrun's report shows ``exitcode : 2``), no traceback."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "-m", "worldmodel.cli",
            *MISSING_DATA]
    out = _run(argv, tmp_path)
    assert out.returncode != 0
    assert len(_error_lines(out.stderr)) == 1, out.stderr
    assert "UserError" not in out.stderr and 'File "' + str(ROOT / "worldmodel") not in out.stderr
    assert "exitcode  : 2" in out.stderr


@pytest.mark.parametrize(
    ("override", "key"),
    [("train.steps=abc", "train.steps"), ("train.lr=abc", "train.lr"), ("train.steps=2.5", "train.steps"),
     ("data.strict=maybe", "data.strict"), ("model.hidden=wide", "model.hidden"), ("train.stepz=3", "train.stepz")],
)
def test_wrong_type_or_key_names_the_field(override: str, key: str) -> None:
    from worldmodel.errors import UserError

    with pytest.raises(UserError, match=f"^bad config: {key}: ") as info:
        compose("finetune_rt1", [override])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("config", "override", "match"), [
    ("finetune_rt1", "train.lr=-1", "train.lr must be > 0"),
    ("pretrain", "model.heads=7", "hidden"),
    ("eval_sim", "eval.tasks=[Juggle]", "Juggle"),
    ("eval_sim", "planner.method=astar", "planner.method"),
    ("finetune_rt1", "data.stride=0", "data.stride"),
])
def test_out_of_range_values_fail_at_composition(config: str, override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compose(config, [override])


def test_main_returns_2_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from worldmodel.cli import main

    assert main(["eval", "sim", "eval.episodes=many"]) == 2
    assert capsys.readouterr().err.startswith("worldmodel: error: bad config: eval.episodes: ")
