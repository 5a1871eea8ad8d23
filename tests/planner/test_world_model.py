"""``WorldModel`` verbs, the checkpoint round trip, the progress head and its loss, planning with a real network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel import WorldModel
from worldmodel.models.progress import ProgressHead, ProgressHeadConfig
from worldmodel.objectives.progress import progress_loss
from worldmodel.planner import METHODS, PlannerConfig, make_planner
from worldmodel.world_model import ACTION_HIGH, ACTION_LOW


def test_verbs_shapes_units_and_seeding(tiny_world_model, frames, language):
    wm = tiny_world_model
    prop = wm.propose(frames, language, n=3, steps=2, horizon=3)  # 3 > F = 2: two chunks
    assert prop.actions.shape == (3, 3, 7) and prop.actions.dtype == np.float32
    assert prop.frames.shape == (3, 3, 48, 60, 3) and prop.frames.dtype == np.uint8
    assert np.all(prop.actions >= ACTION_LOW) and np.all(prop.actions <= ACTION_HIGH)
    lo, hi = wm.stats.bounds()  # policy samples are clamped to [-1, 1] in model space: inside [q01, q99]
    assert np.all(prop.actions[..., :6] >= lo - 1e-6) and np.all(prop.actions[..., :6] <= hi + 1e-6)
    assert np.unique(prop.actions[..., 0]).size > 1  # candidates differ
    wm.seed(3)
    a = wm.imagine(frames, language, prop.actions, steps=2)
    wm.seed(3)
    b = wm.imagine(frames, language, prop.actions, steps=2)
    assert a.shape == (3, 3, 48, 60, 3) and np.array_equal(a, b)
    gen = torch.Generator().manual_seed(3)
    assert np.array_equal(wm.imagine(frames, language, prop.actions, steps=2, generator=gen), a)
    assert wm.imagine(frames, language, prop.actions[0], steps=2).shape == (3, 48, 60, 3)
    p = wm.progress(prop.frames[0], language)
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))
    assert wm.progress(prop.frames, language).shape == (3, 3)
    feats = wm.features(frames)
    assert feats.shape == (2, wm.cfg.hidden) and not np.allclose(feats[0], feats[1])
    batched = wm.propose(np.stack([frames, frames]), np.stack([language, language]), n=2, steps=1)
    assert batched.actions.shape == (2, 2, 2, 7) and batched.frames.shape == (2, 2, 2, 48, 60, 3)


def test_dynamics_depends_on_the_actions(tiny_world_model, frames, language):
    acts = np.zeros((2, 2, 7), np.float32)
    acts[1, :, 0] = 0.05
    out = tiny_world_model.imagine(frames, language, acts, steps=2, generator=torch.Generator().manual_seed(0))
    same_noise = tiny_world_model.imagine(frames, language, acts[[0, 0]], steps=2,
                                          generator=torch.Generator().manual_seed(0))
    assert not np.array_equal(out[0], out[1])
    assert np.array_equal(out[0], same_noise[0])


def test_shared_noise_imagines_every_chunk_from_the_same_draw(tiny_world_model, frames, language):
    from worldmodel.planner import PlannerConfig, world_model_fns

    wm = tiny_world_model
    same = np.zeros((3, 3, 7), np.float32)  # three identical chunks (two sampler chunks: F = 2 < 3)
    independent = wm.imagine(frames, language, same, steps=2, generator=torch.Generator().manual_seed(0))
    shared = wm.imagine(frames, language, same, steps=2, generator=torch.Generator().manual_seed(0),
                        shared_noise=True)
    assert not np.array_equal(independent[0], independent[1])  # different draws, different futures
    assert np.array_equal(shared[0], shared[1]) and np.array_equal(shared[0], shared[2])  # one draw for all
    # the shared draw is the first row's own: imagining that chunk alone from the same generator gives the same
    # (up to one grey level: a batch of 1 and a batch of 3 may round differently in the CPU's matmul kernels; another
    # draw would differ everywhere)
    alone = wm.imagine(frames, language, same[:1], steps=2, generator=torch.Generator().manual_seed(0))
    gap = np.abs(shared[0].astype(np.int16) - alone[0].astype(np.int16))
    assert gap.max() <= 1 and gap.mean() < 0.01, (gap.max(), gap.mean())
    assert np.abs(independent[1].astype(np.int16) - alone[0].astype(np.int16)).mean() > 1  # what another draw does
    moved = same.copy()
    moved[1, :, 0] = 0.05  # only the action differs: so do the futures
    differs = wm.imagine(frames, language, moved, steps=2, generator=torch.Generator().manual_seed(0),
                         shared_noise=True)
    assert np.array_equal(differs[0], differs[2]) and not np.array_equal(differs[0], differs[1])
    # the planner's imagine follows its config (shared by default), its proposals never share
    assert PlannerConfig().shared_noise
    for flag in (True, False):
        fns = world_model_fns(wm, PlannerConfig(shared_noise=flag))
        ctx = fns.prepare(frames, language, None)
        out = fns.imagine(ctx, torch.zeros(2, 2, 7), 2, torch.Generator().manual_seed(1))
        assert torch.equal(out[0], out[1]) == flag
    actions, _ = world_model_fns(wm, PlannerConfig()).propose(ctx, 3, 2, 2, torch.Generator().manual_seed(1))
    assert torch.unique(actions[:, 0, 0]).numel() == 3


def test_proposal_temperature_reaches_the_proposals(tiny_world_model, frames, language):
    from worldmodel.planner import PlannerConfig, world_model_fns

    drawn = {}
    for tau in (1.0, 0.0):
        fns = world_model_fns(tiny_world_model, PlannerConfig(proposal_temperature=tau))
        ctx = fns.prepare(frames, language, None)
        drawn[tau] = fns.propose(ctx, 2, 2, 2, torch.Generator().manual_seed(0))[0]
    direct = tiny_world_model.propose(frames, language, n=2, steps=2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(drawn[1.0].numpy(), direct.actions, atol=1e-5)  # 1: the policy's own draws
    assert not torch.allclose(drawn[0.0], drawn[1.0])


def test_checkpoint_round_trip(tmp_path, frames, language, write_tiny_checkpoint):
    path = write_tiny_checkpoint(tmp_path / "run")
    loaded = WorldModel.from_checkpoint(tmp_path / "run", device="cpu")  # a run directory: its latest checkpoint
    direct = WorldModel.random("tiny", seed=0)
    for (k, v), (k2, v2) in zip(loaded.model.state_dict().items(), direct.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    assert loaded.has_progress and loaded.stats.to_dict() == direct.stats.to_dict()
    assert loaded.config.model.hidden == direct.cfg.hidden
    for wm in (loaded, direct):
        wm.seed(1)
    a, b = loaded.propose(frames, language, n=2, steps=2), direct.propose(frames, language, n=2, steps=2)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(loaded.progress(frames, language), direct.progress(frames, language))
    bare = WorldModel.from_checkpoint(write_tiny_checkpoint(tmp_path / "bare", with_head=False))
    assert not bare.has_progress
    with pytest.raises(RuntimeError, match="no progress head"):
        bare.progress(frames, language)
    with pytest.raises(FileNotFoundError):
        WorldModel.from_checkpoint(tmp_path / "nowhere")
    assert path.name == "step_00000007"


@pytest.mark.parametrize("method", METHODS)
def test_plan_returns_documented_shapes_in_rt1_units(tiny_world_model, frames, language, method):
    cfg = PlannerConfig(method=method, num_candidates=6, horizon=3, sampling_steps=2, iterations=1, elites=2,
                        goal_weight=0.5)
    result = make_planner(tiny_world_model, cfg).plan(frames, language, goal_frame=frames[-1])
    assert result.actions.shape == (3, 7) and result.actions.dtype == np.float32
    assert np.all(result.actions >= ACTION_LOW) and np.all(result.actions <= ACTION_HIGH)
    assert result.imagined_frames.shape == (3, 48, 60, 3) and result.imagined_frames.dtype == np.uint8
    assert result.scores.shape == (6,) and np.all(np.isfinite(result.scores))
    assert result.score == pytest.approx(result.scores.max())
    assert all(result.timing[k] > 0 for k in ("propose_ms", "imagine_ms", "score_ms", "total_ms"))


def test_progress_head_learns_from_the_loss():
    """Frames whose brightness grows with progress: the head, reading the frozen network, must learn it."""
    model = WorldModel.random("tiny", seed=0).model
    torch.manual_seed(0)
    head = ProgressHead(ProgressHeadConfig.for_model(model))
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def batch(b: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start = torch.rand(b, 1, generator=gen) * 0.7
        prog = start + 0.1 * torch.arange(3)[None]  # (B, K + F = 3)
        noise = 0.1 * torch.randn(b, 3, 3, 32, 40, generator=gen)
        frames = (2 * prog[..., None, None, None] - 1 + noise).clamp(-1, 1)
        return frames, torch.zeros(b, 512), prog[:, 1:]  # targets for the F = 2 future frames

    frames, lang, target = batch(64)
    first = progress_loss(model, head, frames, lang, target)
    for _ in range(150):
        f, lg, t = batch()
        out = progress_loss(model, head, f, lg, t)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    last = progress_loss(model, head, frames, lang, target)
    # predicting the mean target would give MAE ~0.2 (targets spread over [0.1, 0.9])
    assert last.mae < 0.07 and first.mae > 0.1, (first.mae, last.mae)
    assert not any(p.grad is not None for p in model.parameters())  # the trunk is read, not trained


def test_progress_loss_weights_leave_zero_weight_clips_out() -> None:
    """data.imitate: clips of non-demonstration data weigh 0 — their targets change nothing, the rest is the plain
    loss over the weighted clips; all-ones weights equal no weights."""
    model = WorldModel.random("tiny", seed=0).model
    head = ProgressHead(ProgressHeadConfig.for_model(model))
    gen = torch.Generator().manual_seed(1)
    frames, lang = torch.rand(4, 3, 3, 32, 40, generator=gen) * 2 - 1, torch.zeros(4, 512)
    target = torch.rand(4, 2, generator=gen)
    weight = torch.tensor([1.0, 0.0, 1.0, 0.0])
    out = progress_loss(model, head, frames, lang, target, weight=weight)
    wrong = target.clone()
    wrong[1], wrong[3] = 1 - target[1], 1 - target[3]  # other targets on the zero-weight clips only
    assert torch.allclose(out.total, progress_loss(model, head, frames, lang, wrong, weight=weight).total)
    kept = torch.tensor([0, 2])
    alone = progress_loss(model, head, frames[kept], lang[kept], target[kept])
    assert torch.allclose(out.total, alone.total, atol=1e-6) and torch.allclose(out.mae, alone.mae, atol=1e-6)
    plain = progress_loss(model, head, frames, lang, target)
    assert torch.allclose(progress_loss(model, head, frames, lang, target, weight=torch.ones(4)).total, plain.total)
    assert not torch.allclose(out.total, plain.total)


def test_an_imagination_model_reimagines_and_scores_the_proposals(frames, language):
    """planner with ``imaginer``: the proposer only proposes, the imaginer only re-imagines (its dynamics verb) and
    scores; the same model as both gives exactly the one-model planner; without re-imagining it is refused."""
    proposer, imaginer = WorldModel.random("tiny", seed=0), WorldModel.random("tiny", seed=1)
    calls: dict[str, list[bool]] = {"proposer": [], "imaginer": []}
    for name, wm in (("proposer", proposer), ("imaginer", imaginer)):
        def spy(*args, _orig=wm.rollout_model, _name=name, **kwargs):
            calls[_name].append((args[5] if len(args) > 5 else kwargs.get("actions")) is not None)  # given actions
            return _orig(*args, **kwargs)
        wm.rollout_model = spy
    cfg = PlannerConfig(num_candidates=4, horizon=2, sampling_steps=1, seed=3)
    two = make_planner(proposer, cfg, imaginer=imaginer).plan(frames, language)
    assert calls["proposer"] == [False] and calls["imaginer"] == [True]
    one = make_planner(proposer, cfg).plan(frames, language)
    same = make_planner(proposer, cfg, imaginer=proposer).plan(frames, language)
    np.testing.assert_array_equal(one.actions, same.actions)
    np.testing.assert_array_equal(one.scores, same.scores)
    np.testing.assert_array_equal(one.candidates, two.candidates)  # the same proposals ...
    assert not np.allclose(one.scores, two.scores)  # ... imagined and scored by another model
    with pytest.raises(ValueError, match="reimagine=true"):
        make_planner(proposer, PlannerConfig(reimagine=False), imaginer=imaginer)
