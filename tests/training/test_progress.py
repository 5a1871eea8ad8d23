"""The progress head in fine-tuning: trained on the clips' ``progress``, logged, saved with every checkpoint and
loaded by ``load_checkpoint`` / ``WorldModel.from_checkpoint``; ``train.progress_weight=0`` trains none (pretraining
never has one: tests/training/test_chain.py; exact resume with it: tests/training/test_resume.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import DATASET, run_cli
from worldmodel.data.synthetic import synthetic_episode
from worldmodel.data.writer import write_dataset
from worldmodel.models import build_model
from worldmodel.models.progress import ProgressHeadConfig
from worldmodel.planner import PlannerConfig, make_planner
from worldmodel.training import list_checkpoints, load_checkpoint
from worldmodel.training.checkpoint import PROGRESS_FILE
from worldmodel.world_model import PROGRESS_FILE as WM_PROGRESS_FILE
from worldmodel.world_model import WorldModel

PROGRESS_KEYS = ("loss/progress", "progress/mse", "progress/mae")


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


@pytest.fixture(scope="module")
def finetuned(common, tmp_path_factory):
    """8 fine-tuning steps from scratch (checkpoints at 4 and 8)."""
    run = tmp_path_factory.mktemp("ft_progress")
    assert run_cli("finetune", "rt1", *common, "train.sample_every=0", f"run_dir={run}") == 0
    return run


def test_finetune_trains_logs_and_saves_the_head(finetuned) -> None:
    assert PROGRESS_FILE == WM_PROGRESS_FILE
    ckpts = list_checkpoints(finetuned)
    assert [c.name for c in ckpts] == ["step_00000004", "step_00000008"]
    expected = ProgressHeadConfig.for_model(build_model("tiny")).to_dict()
    for c in ckpts:
        assert (c / PROGRESS_FILE).is_file()
        assert json.loads((c / "meta.json").read_text())["progress_head"] == expected
    first, last = (load_file(str(c / PROGRESS_FILE)) for c in ckpts)
    assert first.keys() == last.keys() and any(not torch.equal(first[k], last[k]) for k in first)  # it learns

    rows = _rows(finetuned)
    with_progress = [r for r in rows if "loss/progress" in r]
    assert with_progress, "no progress terms logged"
    for r in with_progress:
        assert all(math.isfinite(r[k]) for k in PROGRESS_KEYS)
        assert 0 <= r["progress/mse"] <= 1 and 0 <= r["progress/mae"] <= 1
        # log_every=1, grad_accum=1: loss/total is the flow objective plus 1.0 x the progress BCE
        assert r["loss/total"] >= r["loss/progress"] > 0
    # video micro-batches (verb mix) carry no actions, hence no progress terms
    assert all(not any(k in r for k in PROGRESS_KEYS) for r in rows if r not in with_progress)


def test_world_model_scores_with_the_trained_head(finetuned) -> None:
    loaded = load_checkpoint(finetuned)
    assert loaded.progress_head is not None and not loaded.progress_head.training
    saved = load_file(str(loaded.path / PROGRESS_FILE))
    assert all(torch.equal(v, saved[k]) for k, v in loaded.progress_head.state_dict().items())

    wm = WorldModel.from_checkpoint(finetuned)
    assert wm.has_progress
    assert all(torch.equal(v, saved[k]) for k, v in wm.progress_head.state_dict().items())
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 48, 60, 3), dtype=np.uint8)
    language = rng.normal(size=512).astype(np.float32)
    p = wm.progress(frames, np.stack([language, language]))
    assert p.shape == (2, 3) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
    # the planner scores imagined futures with it
    cfg = PlannerConfig(num_candidates=3, horizon=2, sampling_steps=1, smoothness_weight=0.0)
    result = make_planner(wm, cfg).plan(frames[0], language)
    assert result.scores.shape == (3,) and np.all((result.scores >= 0) & (result.scores <= 1))


def test_init_from_a_finetuned_checkpoint_continues_its_head(finetuned, common, tmp_path, capsys) -> None:
    run = tmp_path / "again"
    assert run_cli("finetune", "rt1", *common, "train.sample_every=0", "train.steps=1", f"init={finetuned}",
                   f"run_dir={run}") == 0
    assert f"init: progress head from {list_checkpoints(finetuned)[-1]}" in capsys.readouterr().out
    assert (list_checkpoints(run)[-1] / PROGRESS_FILE).is_file()


def test_progress_loss_decreases_on_a_fixed_clip(common, tmp_path) -> None:
    """One episode of K + F = 3 frames: every clip is the same, targets (0.5, 1.0) for the two future frames."""
    root = tmp_path / "rlds"
    write_dataset([synthetic_episode(3, 3, image_hw=(32, 40))], root, DATASET, num_shards=1, progress=False)
    data = [a for a in common if not a.startswith(("data.dir=", "data.shuffle_buffer="))]
    run = tmp_path / "run"
    assert run_cli("finetune", "rt1", *data, f"data.dir={root}", "data.shuffle_buffer=1", "train.sample_every=0",
                   "train.steps=20", "train.ckpt_every=20", "objective.verb_probs.video=0", f"run_dir={run}") == 0
    mse = [r["progress/mse"] for r in _rows(run)]
    assert len(mse) == 20 and all(math.isfinite(v) for v in mse)
    # seeded CPU run: ~0.14 -> ~0.063 (the best constant guess for targets 0.5 and 1.0 is 0.0625)
    assert np.mean(mse[-5:]) < 0.6 * np.mean(mse[:3]), mse


def test_progress_weight_zero_trains_no_head(common, tmp_path) -> None:
    run = tmp_path / "run"
    assert run_cli("finetune", "rt1", *common, "train.sample_every=0", "train.steps=2", "train.progress_weight=0",
                   f"run_dir={run}") == 0
    ckpt = list_checkpoints(run)[-1]
    assert not (ckpt / PROGRESS_FILE).exists() and "progress_head" not in json.loads((ckpt / "meta.json").read_text())
    assert all(not any(k in r for k in PROGRESS_KEYS) for r in _rows(run))
    assert load_checkpoint(run).progress_head is None and not WorldModel.from_checkpoint(run).has_progress
