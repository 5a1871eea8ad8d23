"""The planner scripts end to end on a tiny checkpoint: train_scorer.py (collect, train, export), ladder.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_train_scorer_collects_trains_and_exports(tmp_path, write_tiny_checkpoint) -> None:
    from worldmodel import WorldModel
    from worldmodel.training.scorer import RankedFutures

    ckpt = write_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "scorer"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_scorer.py"), "--checkpoint", str(ckpt), "--out", str(out),
           "--tasks", "CloseDrawer", "--episodes", "2", "--candidates", "3", "--steps", "5", "--image-size", "32", "40"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = RankedFutures.load(out / "futures.npz")
    wm = WorldModel.from_checkpoint(ckpt)
    assert data.imagined.shape[1] == 3 and data.imagined.shape[3:] == (wm.cfg.frame_height, wm.cfg.frame_width, 3)
    assert data.real.shape == data.imagined.shape  # the true futures of the same candidates, at the same size
    assert data.context.shape[1] == wm.context_frames and set(data.episode.tolist()) == {50000, 50001}
    assert np.isfinite(data.true_progress).all() and set(data.task.tolist()) == {"CloseDrawer"}
    summary = json.loads((out / "scorer.json").read_text())
    assert summary["decisions_train"] + summary["decisions_val"] == len(data) and summary["futures"] == "imagined"
    assert "spearman_other_after" in summary
    assert WorldModel.from_checkpoint(out / "checkpoint").progress_head is not None


def test_ladder_runs_rungs_and_reports(tmp_path, write_tiny_checkpoint) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "ladder"
    cmd = [sys.executable, str(ROOT / "scripts" / "ladder.py"), "--checkpoint", str(ckpt), "--out", str(out),
           "--rungs", "dit", "none", "oracle", "--episodes", "1", "--tasks", "CloseDrawer", "--workers", "1",
           "eval.image_size=[32,40]", "planner.num_candidates=2", "planner.horizon=2", "planner.sampling_steps=1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rung in ("none", "oracle"):
        info = json.loads((out / "evals" / rung / "eval_info.json").read_text())
        assert info["per_episode"][0]["extras"]["scorer"] == rung
    assert json.loads((out / "evals" / "dit" / "eval_info.json").read_text())["policy"]["name"] == "dit"
    report = (out / "report" / "README.md").read_text()
    assert "Ranking quality" in report and "oracle" in report
    # the report's command reproduces the run: the overrides stay apart from --tasks' values
    assert "--rungs dit none oracle --tasks CloseDrawer -- eval.image_size=[32,40]" in report
    assert "Paired against dit" in report


def test_rank_imagination_compares_imaginers_on_the_proposers_decisions(tmp_path, write_tiny_checkpoint) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "rank.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "rank_imagination.py"), "--proposer", str(ckpt),
           "--imaginer", f"a={ckpt}", "--imaginer", f"b={ckpt}", "--tasks", "CloseDrawer", "--decisions", "2",
           "--n", "3", "--steps", "1", "--image-size", "32", "40", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["decision"] for r in rows] == [0, 1] and all(len(r["true_progress"]) == 3 for r in rows)
    for row in rows:
        for mode in ("independent", "shared"):
            assert row[f"a/{mode}/psnr"] > 0  # imagined and true futures compared at the model's resolution
            # the same checkpoint imagines the same futures from the same generator under both names
            assert row[f"a/{mode}/psnr"] == row[f"b/{mode}/psnr"]
    assert "| a | imagined, shared draws |" in proc.stdout and "| b | true |" in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "rank_imagination.py"), "--proposer", str(ckpt),
                          "--imaginer", str(ckpt)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "NAME=CHECKPOINT" in bad.stderr
