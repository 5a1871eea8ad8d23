"""Re-training the progress head to rank imagined futures (worldmodel.training.scorer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel import WorldModel
from worldmodel.training.scorer import RankedFutures, mean_spearman, ranking_loss, top1_rate, train_scorer

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_futures(wm: WorldModel, decisions: int = 24, n: int = 4, seed: int = 0) -> RankedFutures:
    """Candidates whose last imagined frame is a grey level; the true progress grows with the brightness, so the
    brightest candidate is the known best of each decision. Their "real" futures are the negatives: there the
    darkest is the best."""
    rng = np.random.default_rng(seed)
    h, w = wm.model.cfg.frame_height, wm.model.cfg.frame_width
    levels = rng.uniform(20, 235, size=(decisions, n))
    imagined = np.repeat(levels[:, :, None, None, None, None], 2, axis=2)  # (M, N, T=2, 1, 1, 1)
    imagined = np.broadcast_to(imagined, (decisions, n, 2, h, w, 3)).astype(np.uint8).copy()
    context = np.full((decisions, wm.context_frames, h, w, 3), 128, np.uint8)
    return RankedFutures(
        context, imagined, (levels / 255.0).astype(np.float32), np.ones(decisions, np.int64),
        np.zeros((decisions, wm.model.cfg.lang_dim), np.float32), np.array(["pick coke can"] * decisions),
        np.array(["PickCan"] * decisions), np.arange(decisions) // 2, 255 - imagined)


def test_ranking_loss_prefers_the_true_order() -> None:
    progress = torch.tensor([[0.0, 0.5, 1.0]])
    right, wrong = torch.tensor([[-1.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, -1.0]])
    stages = torch.ones(1)
    assert ranking_loss(right, progress, stages) < ranking_loss(wrong, progress, stages)
    tied = torch.zeros(1, 3)  # equal true progress: no pair, only the calibration term
    assert torch.allclose(ranking_loss(torch.zeros(1, 3), tied, stages, bce_weight=0.0), torch.zeros(()))


def test_ranking_metrics() -> None:
    p = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    assert mean_spearman(p, p) == pytest.approx(1.0)
    assert mean_spearman(-p, p) == pytest.approx(-1.0)
    assert top1_rate(p, p) == 1.0 and top1_rate(-p, p) == 0.0


def test_trained_head_picks_the_known_best(tmp_path) -> None:
    wm = WorldModel.random("tiny", seed=0)
    data = toy_futures(wm)
    path = data.save(tmp_path / "futures.npz")
    again = RankedFutures.load(path)
    assert np.array_equal(again.imagined, data.imagined) and again.instruction[0] == "pick coke can"
    before = {k: v.clone() for k, v in wm.progress_head.state_dict().items()}
    head, report = train_scorer(wm, again, steps=150, lr=3e-3, batch=8, val_fraction=0.25)
    assert report.decisions_val == 6 and report.decisions_train == 18
    assert report.spearman_after >= 0.8 and report.top1_after == 1.0
    assert report.spearman_after > report.spearman_before
    for k, v in wm.progress_head.state_dict().items():  # the world model's own head is untouched
        assert torch.equal(v, before[k])
    assert any(not torch.equal(v, before[k]) for k, v in head.state_dict().items())


def test_head_trained_on_real_futures_ranks_those(tmp_path) -> None:
    wm = WorldModel.random("tiny", seed=0)
    head, report = train_scorer(wm, toy_futures(wm), steps=150, lr=3e-3, batch=8, val_fraction=0.25, futures="real")
    assert report.futures == "real"
    assert report.spearman_after >= 0.8 and report.top1_after == 1.0  # the dark real future is the best
    assert report.spearman_other_after <= -0.8  # so on the (inverted) imagined futures it ranks backwards
    with pytest.raises(ValueError, match="futures"):
        train_scorer(wm, toy_futures(wm), steps=1, futures="true")


def test_load_names_the_missing_key(tmp_path) -> None:
    np.savez(tmp_path / "bad.npz", context=np.zeros(1))
    with pytest.raises(ValueError, match="bad.npz.*missing"):
        RankedFutures.load(tmp_path / "bad.npz")


def test_export_replaces_the_progress_head(tmp_path, write_tiny_checkpoint) -> None:
    from worldmodel.training.checkpoint import export_weights

    tiny_checkpoint = write_tiny_checkpoint(tmp_path / "run")
    wm = WorldModel.from_checkpoint(tiny_checkpoint)
    head = {k: torch.full_like(v, 0.5) for k, v in wm.progress_head.state_dict().items()}
    out = export_weights(tiny_checkpoint, tmp_path / "scored", progress_head=head)
    loaded = WorldModel.from_checkpoint(out)
    for k, v in loaded.progress_head.state_dict().items():
        assert torch.equal(v, head[k])
    assert torch.equal(next(iter(loaded.model.state_dict().values())), next(iter(wm.model.state_dict().values())))
    with pytest.raises(ValueError, match="shapes"):
        export_weights(tiny_checkpoint, tmp_path / "bad", progress_head={k: v[..., :1] for k, v in head.items()})
