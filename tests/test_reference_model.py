"""The shipped reference model (``checkpoints/reference``) loads straight from the repository and acts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "checkpoints" / "reference"

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not (REFERENCE / "ema.safetensors").is_file(),
                                 reason="no reference model committed at checkpoints/reference yet")]


def test_reference_is_weights_only_and_small() -> None:
    files = sorted(p.name for p in REFERENCE.iterdir())
    assert "ema.safetensors" in files and "config.yaml" in files
    assert not [f for f in files if f.endswith((".pt", ".pth", ".pkl", ".ckpt", ".bin"))], files
    assert sum(p.stat().st_size for p in REFERENCE.rglob("*") if p.is_file()) <= 50 * 2**20


def test_reference_loads_with_its_recipe() -> None:
    from worldmodel import WorldModel

    wm = WorldModel.from_checkpoint(str(REFERENCE), device="cpu")
    cfg = wm.model.cfg
    assert cfg.instruction_tokens > 0 and cfg.state_dim == 8 and cfg.frame_position
    assert cfg.keypoints and cfg.keypoint_language and wm.imagines  # the competence recipe, a world model
    assert wm.progress_head is not None


def test_reference_runs_one_dit_episode(tmp_path) -> None:
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "worldmodel.cli", "eval", "sim", "policy=dit", f"checkpoint={REFERENCE}",
           "eval.tasks=[CloseDrawer]", "eval.episodes=1", "eval.seed=123456", f"eval.out={out}",
           "eval.videos=false"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert len(info["per_episode"]) == 1 and info["per_task"]["CloseDrawer"]["n_episodes"] == 1


def test_readme_planner_example_runs_on_it() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Planning from Python", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    assert 'WorldModel.from_checkpoint("checkpoints/reference"' in code
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md (Planning from Python)", "exec"), scope)
    finally:
        os.chdir(cwd)
    result = scope["result"]
    assert result.actions.shape == (4, 7) and result.scores.shape == (16,)
    assert scope["env"].action_space.contains(result.actions[0])
