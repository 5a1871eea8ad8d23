"""Flow-matching and Self-Flow losses (docs/architecture.md, "Objectives")."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models import DiTOutput, Projector, Tokens, build_model
from worldmodel.objectives import (
    EMA,
    FlowBatch,
    ObjectiveConfig,
    flow_matching_loss,
    interpolate,
    selfflow_inputs,
    selfflow_loss,
    training_loss,
)
from worldmodel.objectives.losses import _draw_t_eps


def _batch(model, verbs=("policy", "dynamics", "inverse", "policy"), seed=0) -> FlowBatch:
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    b, t = len(verbs), cfg.context_frames + cfg.future_frames
    frames = torch.rand(b, t, 3, cfg.frame_height, cfg.frame_width, generator=g) * 2 - 1
    actions = torch.randn(b, cfg.future_frames, 7, generator=g)
    return FlowBatch.from_clip(
        frames, actions, torch.randn(b, 512, generator=g), list(verbs), cfg.context_frames, cfg.patch
    )


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Spy(torch.nn.Module):
    """Wraps a model and records what its ``features`` receives."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.calls = model, []
        self.cfg = model.cfg

    def features(self, x, t, layout, lang, block):
        self.calls.append((x, t, block, torch.is_grad_enabled()))
        return self.model.features(x, t, layout, lang, block)


def test_layers_follow_depth() -> None:
    assert ObjectiveConfig().layers(28) == (8, 20)
    assert ObjectiveConfig().layers(12) == (4, 8)
    assert ObjectiveConfig().layers(4) == (1, 3)


def test_teacher_sees_max_t_s_with_same_noise_and_gets_no_grad() -> None:
    model = build_model("tiny")
    teacher = Spy(
        EMA(model).model.requires_grad_(True)
    )  # grad-enabled params: only no_grad can keep them clean
    projector = Projector(model.cfg.hidden)
    batch, cfg = _batch(model), ObjectiveConfig(mask_ratio_frames=0.3, mask_ratio_actions=0.5)
    loss = selfflow_loss(model, teacher, projector, batch, cfg, _gen())
    loss.total.backward()
    inp = selfflow_inputs(batch, cfg, _gen())  # same generator state -> same draws
    ((x_te, t_te, block, grad_on),) = teacher.calls
    assert block == cfg.layers(model.cfg.depth)[1] and not grad_on
    assert all(p.grad is None for p in teacher.model.parameters())
    assert all(p.grad is not None for p in projector.parameters())
    gen = batch.generated
    assert torch.equal(t_te, inp.t_teacher)
    assert torch.equal(t_te[gen], torch.maximum(inp.t, inp.s)[:, None].expand_as(gen)[gen])
    assert torch.equal(t_te[~gen], torch.ones_like(t_te[~gen]))
    expected = interpolate(batch.x, inp.eps, t_te)  # same noise as the student
    assert torch.equal(x_te.frames, expected.frames) and torch.equal(x_te.actions, expected.actions)
    # wherever the student's level is the cleaner one, student and teacher inputs are identical
    same = inp.t_student == t_te
    sf, sa = batch.x.split(same)
    assert torch.equal(inp.x_student.frames[sf], x_te.frames[sf])
    assert torch.equal(inp.x_student.actions[sa], x_te.actions[sa])
    assert (t_te >= inp.t_student).all()


def test_student_times_masks_and_ratio() -> None:
    model = build_model("tiny")
    batch = _batch(model, verbs=("policy",) * 256)
    cfg = ObjectiveConfig(mask_ratio_frames=0.25, mask_ratio_actions=0.5)
    inp = selfflow_inputs(batch, cfg, _gen())
    gen = batch.generated
    assert not inp.masked[~gen].any()  # only generated tokens are masked
    mf, ma = batch.x.split(inp.masked)
    gf, ga = batch.x.split(gen)
    assert abs(mf[gf].float().mean() - 0.25) < 0.01
    assert abs(ma[ga].float().mean() - 0.5) < 0.03
    ts = inp.t_student
    expect = torch.where(inp.masked, inp.s[:, None], inp.t[:, None])
    assert torch.equal(ts[gen], expect[gen]) and (ts[~gen] == 1).all()
    assert 0.4 < (inp.s > inp.t).float().mean() < 0.6  # t and s are not sorted
    loss = selfflow_loss(model, EMA(model).model, Projector(model.cfg.hidden), batch, cfg, _gen())
    n_f, n_a = gf.sum(), ga.sum()
    expected_fraction = (0.25 * n_f + 0.5 * n_a) / (n_f + n_a)
    assert abs(loss.masked_fraction - expected_fraction) < 0.01


def test_selfflow_off_is_exactly_vanilla() -> None:
    model = build_model("tiny")
    _perturb(model)
    batch = _batch(model)
    vanilla = flow_matching_loss(model, batch, ObjectiveConfig(), _gen(3))
    off = training_loss(model, batch, ObjectiveConfig(selfflow=False), generator=_gen(3))
    assert torch.equal(off.total, vanilla.total) and torch.equal(off.flow, vanilla.flow)
    assert off.rep == 0 and off.masked_fraction == 0
    # Self-Flow with no masking feeds the student exactly the vanilla input: same flow term, plus gamma·rep
    cfg = ObjectiveConfig(mask_ratio_frames=0.0, mask_ratio_actions=0.0)
    sf = training_loss(model, batch, cfg, EMA(model).model, Projector(model.cfg.hidden), _gen(3))
    assert torch.equal(sf.flow, vanilla.flow)
    torch.testing.assert_close(sf.total, sf.flow + 0.8 * sf.rep)
    assert sf.rep > 0 and sf.masked_fraction == 0


def _perturb(model) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


class Oracle(torch.nn.Module):
    """Fake model predicting a fixed output; lets tests control what the loss sees."""

    def __init__(self, cfg, pred: Tokens) -> None:
        super().__init__()
        self.cfg, self.pred = cfg, pred

    def forward(self, x, t, layout, lang=None, return_hidden=()):
        return DiTOutput(self.pred)


def _perfect(prediction: str):
    """A tiny model, a batch, its times (from ``_gen(7)``) and the perfect output on every token: x for
    x-prediction, v = x - eps for velocity."""
    model = build_model("tiny", prediction=prediction)
    batch = _batch(model)
    t, eps, _, _ = _draw_t_eps(batch, ObjectiveConfig(), _gen(7))
    perfect = (
        batch.x if prediction == "x" else Tokens(batch.x.frames - eps.frames, batch.x.actions - eps.actions)
    )
    return model, batch, t, perfect


@pytest.mark.parametrize("prediction", ["velocity", "x"])
def test_flow_loss_covers_only_generated_tokens(prediction: str) -> None:
    model, batch, _, perfect = _perfect(prediction)
    loss = flow_matching_loss(Oracle(model.cfg, perfect), batch, ObjectiveConfig(), _gen(7))
    assert loss.flow < 1e-8
    # corrupt only clean tokens: loss unchanged
    gf, ga = batch.x.split(batch.generated)
    bad = Tokens(
        torch.where(gf[..., None], perfect.frames, 100.0), torch.where(ga[..., None], perfect.actions, 100.0)
    )
    assert flow_matching_loss(Oracle(model.cfg, bad), batch, ObjectiveConfig(), _gen(7)).flow < 1e-8
    # corrupt one generated action token: loss grows by exactly its share
    worse = Tokens(perfect.frames, perfect.actions.clone())
    b, i = ga.nonzero()[0].tolist()
    worse.actions[b, i] += 1.0
    got = flow_matching_loss(Oracle(model.cfg, worse), batch, ObjectiveConfig(), _gen(7))
    if prediction == "velocity":
        torch.testing.assert_close(got.flow_actions, torch.tensor(1.0 / ga.sum().item()))
    assert got.flow_actions > 0 and got.flow_frames < 1e-8


def test_selfflow_requires_teacher_and_projector() -> None:
    model = build_model("tiny")
    with pytest.raises(ValueError, match="teacher"):
        training_loss(model, _batch(model), ObjectiveConfig())


def test_context_noise_lightly_noises_clean_tokens_for_student_and_teacher() -> None:
    model = build_model("tiny")
    batch = _batch(model, verbs=("dynamics",) * 64)
    inp = selfflow_inputs(batch, ObjectiveConfig(context_noise=0.2), _gen())
    clean = ~batch.generated
    ts = inp.t_student[clean]
    assert (ts >= 0.8).all() and (ts <= 1).all() and ts.std() > 0.02
    assert torch.equal(inp.t_teacher[clean], ts)
    assert (selfflow_inputs(batch, ObjectiveConfig(), _gen()).t_student[clean] == 1).all()


@pytest.mark.parametrize("prediction", ["velocity", "x"])
def test_action_loss_x_weights_every_noise_level_alike(prediction: str) -> None:
    model, batch, t, perfect = _perfect(prediction)
    _, ga = batch.x.split(batch.generated)
    b, i = ga.nonzero()[0].tolist()
    worse = Tokens(perfect.frames, perfect.actions.clone())
    gap = max(1 - float(t[b]), ObjectiveConfig().x_pred_min_gap)
    # one generated action token off by 1 in clean-action units (a velocity model's v off by 1 / (1 - t))
    worse.actions[b, i] += 1.0 if prediction == "x" else 1.0 / (1 - float(t[b]))
    n = ga.sum().item()
    x_cfg = ObjectiveConfig(action_loss="x")
    got = flow_matching_loss(Oracle(model.cfg, worse), batch, x_cfg, _gen(7))
    torch.testing.assert_close(got.flow_actions, torch.tensor(1.0 / n))  # whatever t the sample drew
    v_got = flow_matching_loss(Oracle(model.cfg, worse), batch, ObjectiveConfig(), _gen(7))
    expected = 1.0 / gap**2 if prediction == "x" else 1.0 / (1 - float(t[b])) ** 2
    torch.testing.assert_close(v_got.flow_actions, torch.tensor(expected / n))
    assert flow_matching_loss(Oracle(model.cfg, perfect), batch, x_cfg, _gen(7)).flow_actions < 1e-10
    with pytest.raises(ValueError, match="action_loss"):
        ObjectiveConfig(action_loss="l1")


def test_keypoint_head_term_is_the_clean_action_mse_of_the_keypoints_alone() -> None:
    with pytest.raises(ValueError, match="keypoint_head needs keypoints"):
        build_model("tiny", keypoint_head=True)
    with pytest.raises(ValueError, match="keypoint_action_weight must be >= 0"):
        ObjectiveConfig(keypoint_action_weight=-1.0)
    torch.manual_seed(0)
    model = build_model("tiny", keypoints=8, keypoint_head=True)
    _perturb(model)
    batch = _batch(model)
    off, on = ObjectiveConfig(selfflow=False), ObjectiveConfig(selfflow=False, keypoint_action_weight=0.5)
    base, out = flow_matching_loss(model, batch, off, _gen()), flow_matching_loss(model, batch, on, _gen())
    assert float(base.keypoint_actions) == 0.0
    with torch.no_grad():  # the head's own reading: keypoints of the clean context frames -> (B, F, A)
        points = model(batch.x, torch.ones_like(batch.generated, dtype=torch.float32), batch.layout).points
        expected = (model.keypoint_actions(points) - batch.x.actions).pow(2).mean()
    assert out.keypoint_actions.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.total.item() == pytest.approx(base.total.item() + 0.5 * expected.item(), rel=1e-5)
    model.zero_grad()
    out.keypoint_actions.backward()  # it reads the image through the keypoint net only, never the transformer
    assert model.keypoint_net.net[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in model.blocks.parameters())
    with pytest.raises(ValueError, match="model.keypoint_head=true"):
        flow_matching_loss(build_model("tiny", keypoints=8), batch, on, _gen())


def test_motion_weight_counts_the_tokens_that_change_from_the_last_context_frame() -> None:
    from worldmodel.models import TokenLayout
    from worldmodel.objectives.losses import motion_weights

    layout = TokenLayout(1, 2, (1, 4))  # one context frame, two future frames, 4 patches each
    frames = torch.zeros(1, 12, 3)
    frames[0, 4 + 1] = 0.5  # future frame 1: patch 1 moved by 0.5
    frames[0, 8 + 1] = 0.5  # future frame 2: patch 1 moved by 0.5 ...
    frames[0, 8 + 2] = 1.0  # ... and patch 2 by 1.0
    generated = torch.zeros(1, 12, dtype=torch.bool)
    generated[0, 4:] = True
    w = motion_weights(frames, layout, generated, 2.0)
    mean_m = 2.0 / 8  # changes 0.5 + 0.5 + 1.0 over the 8 generated tokens
    assert w[0, :4].tolist() == [1.0] * 4  # context frame: m = 0
    torch.testing.assert_close(w[0, 5], torch.tensor(1 + 2.0 * 0.5 / mean_m))
    torch.testing.assert_close(w[0, 10], torch.tensor(1 + 2.0 * 1.0 / mean_m))
    assert w[0, 4] == w[0, 7] == w[0, 11] == 1.0  # unchanged patches keep weight 1
    assert torch.equal(motion_weights(frames, layout, generated, 0.0), torch.ones(1, 12))
    with pytest.raises(ValueError, match="motion_weight"):
        ObjectiveConfig(motion_weight=-1.0)


def test_motion_weight_moves_the_frame_loss_to_the_patches_that_move() -> None:
    model = build_model("tiny", prediction="velocity")
    batch = _batch(model)  # sample 1 is a dynamics example: its future frames are generated, its actions given
    k, per = model.cfg.context_frames, model.cfg.grid[0] * model.cfg.grid[1]
    frames = batch.x.frames.clone()
    for f in range(k, k + model.cfg.future_frames):  # the future repeats the last context frame ...
        frames[:, f * per:(f + 1) * per] = frames[:, (k - 1) * per:k * per]
    frames[:, k * per] += 1.0  # ... except the first patch of the first future frame, which moves
    moving = FlowBatch(Tokens(frames, batch.x.actions), batch.generated, batch.layout, batch.lang)
    _, eps, _, _ = _draw_t_eps(moving, ObjectiveConfig(), _gen(7))
    exact = Tokens(moving.x.frames - eps.frames, moving.x.actions - eps.actions)  # the perfect velocity

    def error_at(index: int, cfg: ObjectiveConfig) -> float:  # frame loss of a prediction wrong by 1 in one token
        wrong = Tokens(exact.frames.clone(), exact.actions)
        wrong.frames[1, index] += 1.0
        return float(flow_matching_loss(Oracle(model.cfg, wrong), moving, cfg, _gen(7)).flow_frames)

    assert bool(moving.generated[1, k * per]) and bool(moving.generated[1, k * per + 1])
    off, on = ObjectiveConfig(selfflow=False), ObjectiveConfig(selfflow=False, motion_weight=10.0)
    assert error_at(k * per, off) > 0
    assert error_at(k * per, off) == pytest.approx(error_at(k * per + 1, off))  # unweighted: tokens alike
    assert error_at(k * per, on) > 5 * error_at(k * per + 1, on)  # weighted: the moving patch dominates


def test_policy_frame_weight_scales_the_frames_of_policy_examples_only() -> None:
    model, batch, _, perfect = _perfect("velocity")  # verbs: policy, dynamics, inverse, policy
    gf, _ = batch.x.split(batch.generated)

    def frame_loss(row: int, weight: float) -> float:  # a prediction wrong by 1 in one frame token of one row
        wrong = Tokens(perfect.frames.clone(), perfect.actions)
        wrong.frames[row, int(gf[row].nonzero()[0])] += 1.0
        cfg = ObjectiveConfig(selfflow=False, policy_frame_weight=weight)
        return float(flow_matching_loss(Oracle(model.cfg, wrong), batch, cfg, _gen(7)).flow_frames)

    assert frame_loss(0, 1.0) > 0 and frame_loss(0, 1.0) == pytest.approx(frame_loss(1, 1.0))  # alike at 1
    assert frame_loss(0, 0.0) == 0.0 and frame_loss(1, 0.0) > frame_loss(1, 1.0)  # policy frames left out
    assert 0 < frame_loss(0, 0.5) < frame_loss(1, 0.5)
    with pytest.raises(ValueError, match="policy_frame_weight"):
        ObjectiveConfig(policy_frame_weight=-0.5)


class TimeSpy(torch.nn.Module):
    """Fake model that records the per-token times it is given and predicts zeros."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg, self.times = cfg, []

    def forward(self, x, t, layout, lang=None, return_hidden=()):
        self.times.append(t.clone())
        zeros = Tokens(torch.zeros_like(x.frames), None if x.actions is None else torch.zeros_like(x.actions))
        return DiTOutput(zeros, hidden={k: torch.zeros(t.shape[0], t.shape[1], 8) for k in return_hidden})


def test_independent_action_time_gives_policy_actions_their_own_time_only() -> None:
    model = build_model("tiny")
    batch = _batch(model, verbs=("policy", "dynamics", "inverse", "policy"))
    gf, ga = batch.x.split(batch.generated)

    def times(independent: bool):
        spy = TimeSpy(model.cfg)
        flow_matching_loss(spy, batch, ObjectiveConfig(selfflow=False, independent_action_time=independent), _gen(7))
        return batch.x.split(spy.times[0])

    (shared_f, shared_a), (own_f, own_a) = times(False), times(True)
    assert torch.equal(shared_f, own_f)  # the frames' times (and every draw before the new one) are unchanged
    for row in (1, 2):  # dynamics: clean actions; inverse: its actions keep the sample's t
        assert torch.equal(shared_a[row], own_a[row])
    for row in (0, 3):  # policy: the frames keep t, the actions get one other time, shared by the chunk
        t_frames = shared_f[row][gf[row]]
        assert torch.all(t_frames == t_frames[0]) and torch.all(shared_a[row] == t_frames[0])
        assert torch.all(own_a[row] == own_a[row][0]) and float(own_a[row][0]) != float(t_frames[0])
        assert 0 < float(own_a[row][0]) < 1
    assert float(own_a[0][0]) != float(own_a[3][0])  # drawn per sample


def test_independent_action_time_reaches_selfflow_student_and_teacher() -> None:
    model = build_model("tiny")
    batch = _batch(model, verbs=("policy", "policy", "policy", "policy"))
    cfg = ObjectiveConfig(independent_action_time=True, mask_ratio_frames=0.0, mask_ratio_actions=0.0)
    inp = selfflow_inputs(batch, cfg, _gen(3))
    student_f, student_a = batch.x.split(inp.t_student)
    teacher_f, teacher_a = batch.x.split(inp.t_teacher)
    gf, _ = batch.x.split(batch.generated)
    for row in range(4):
        assert torch.all(student_f[row][gf[row]] == inp.t[row])  # no mask: the student sees t on the frames ...
        assert float(student_a[row][0]) != float(inp.t[row])  # ... and the actions' own time
        assert torch.allclose(teacher_a[row], torch.maximum(student_a[row], inp.s[row]))
        assert torch.allclose(teacher_f[row][gf[row]], torch.maximum(inp.t[row], inp.s[row]))
