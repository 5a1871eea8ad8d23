"""scripts/pretrain_keypoints.py: the keypoint net pretrained by regression, handed on as an ``init=`` checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from worldmodel.models import Projector, build_model
from worldmodel.training.state import init_from_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pretrain_keypoints.py"
REFERENCE = ROOT / "checkpoints" / "reference"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.parametrize("language", [False, True])
def test_pretrained_keypoints_reach_a_fine_tuning_run(tiny_dataset, tmp_path, language):
    out = tmp_path / "kpinit"
    done = _run("--data", str(tiny_dataset), "--init", str(REFERENCE), "--out", str(out), "--keypoints", "8",
                "--steps", "3", "--batch", "4", "--heldout", "2", "--log-every", "1", *(["--language"] * language))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "step 3: train MSE" in done.stdout and "held-out MSE" in done.stdout
    ref, new = load_file(REFERENCE / "ema.safetensors"), load_file(out / "ema.safetensors")
    own = {k: v for k, v in ref.items() if not k.startswith("keypoint_")}  # (the init's keypoint layers are dropped)
    assert all(torch.equal(new[k], v) for k, v in own.items())  # the init's own weights are untouched
    added = sorted(set(new) - set(own))
    kept = ("keypoint_net.", "keypoint_head.", *(("keypoint_task.", "keypoint_head_task.") if language else ()))
    assert added and all(k.startswith((*kept, "keypoint_embed.", "keypoint_cond.")) for k in added)
    assert any(k.startswith("keypoint_task.instruction.") for k in added) == language  # the init has instruction tokens
    assert "keypoint_embed." in json.loads((out / "meta.json").read_text())["untrained"]  # written, not trained
    # a fine-tuning run with keypoints + head starts from these weights; only the token / FiLM layers are fresh
    model = build_model("demo", keypoints=8, keypoint_head=True, keypoint_film=True, instruction_tokens=16,
                        state_dim=8, frame_position=True, keypoint_language=language)
    report = init_from_checkpoint(model, Projector(model.cfg.hidden), out)
    assert not any(k.startswith(kept) for k in report["fresh"])
    assert {k.split(".")[0] for k in report["fresh"] if k.startswith("keypoint")} == {"keypoint_embed", "keypoint_cond"}
    torch.testing.assert_close(model.state_dict()["keypoint_net.net.0.weight"], new["keypoint_net.net.0.weight"])


def test_existing_output_is_refused(tiny_dataset, tmp_path):
    done = _run("--data", str(tiny_dataset), "--out", str(tmp_path))
    assert done.returncode == 2 and "exists" in done.stderr
    done = _run("--data", str(tmp_path / "none"), "--out", str(tmp_path / "new"))
    assert done.returncode == 2 and "none" in done.stderr and not (tmp_path / "new").exists()


def test_an_init_with_other_keypoints_has_them_replaced(tiny_dataset, tmp_path):
    first, second = tmp_path / "kp8", tmp_path / "kp4"
    for init, out, p in ((REFERENCE, first, "8"), (first, second, "4")):
        done = _run("--data", str(tiny_dataset), "--init", str(init), "--out", str(out), "--keypoints", p,
                    "--steps", "1", "--batch", "2", "--heldout", "2")
        assert done.returncode == 0, done.stderr[-2000:]
    weights = load_file(second / "ema.safetensors")
    assert weights["keypoint_head.0.weight"].shape[1] == 8  # 2 x 4 keypoints: the 8-keypoint layers are gone
    from worldmodel import WorldModel

    assert WorldModel.from_checkpoint(second).model.cfg.keypoints == 4  # the output loads as a model, too
    model = build_model("demo", keypoints=4, keypoint_head=True, keypoint_film=True, instruction_tokens=16,
                        state_dim=8, frame_position=True)
    report = init_from_checkpoint(model, Projector(model.cfg.hidden), second)
    assert {k.split(".")[0] for k in report["fresh"] if k.startswith("keypoint")} == {"keypoint_embed", "keypoint_cond"}
