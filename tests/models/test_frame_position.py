"""The fixed 2-D position embedding of frame patches (``model.frame_position``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from worldmodel.models import TokenLayout, Tokens, build_model
from worldmodel.models.config import ModelConfig
from worldmodel.models.dit import grid_position_features


def test_grid_features_tell_patches_apart_and_repeat_over_frames() -> None:
    layout = TokenLayout(1, 2, (4, 5))
    pos = layout.positions()[: layout.num_frame_tokens]
    feats = grid_position_features(pos[:, 1], pos[:, 2], 32)
    assert feats.shape == (layout.num_frame_tokens, 32)
    per_frame = feats.view(3, 20, 32)
    assert torch.equal(per_frame[0], per_frame[1]) and torch.equal(per_frame[0], per_frame[2])
    dist = torch.cdist(per_frame[0], per_frame[0])
    assert dist[~torch.eye(20, dtype=torch.bool)].min() > 0.1  # every (row, col) of a frame is distinct


def _hidden_of_identical_patches(frame_position: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model("tiny", frame_position=frame_position).eval()
    cfg = model.cfg
    layout = TokenLayout(cfg.context_frames, cfg.future_frames, cfg.grid)
    x = Tokens(torch.ones(1, layout.num_frame_tokens, cfg.patch_dim), torch.zeros(1, layout.num_action_tokens,
                                                                                cfg.action_dim))
    t = torch.ones(1, layout.num_tokens)
    with torch.no_grad():
        hidden = model(x, t, layout, None, return_hidden=(1,), output_heads=False).hidden[1]
    n = cfg.grid[0] * cfg.grid[1]
    return hidden[0, :n]  # the first frame's patches, all with the same pixels


def test_position_reaches_the_values_only_with_frame_position() -> None:
    # RoPE changes attention weights only: patches with equal pixels keep equal hidden states without the embedding
    same = _hidden_of_identical_patches(False)
    assert torch.allclose(same, same[:1].expand_as(same), atol=1e-5)
    differ = _hidden_of_identical_patches(True)
    assert (differ - differ[:1]).abs().amax(-1)[1:].min() > 1e-3


def test_old_model_configs_load_without_it() -> None:
    cfg = ModelConfig.from_dict({k: v for k, v in ModelConfig().__dict__.items() if k != "frame_position"})
    assert cfg.frame_position is False


def test_spatial_softmax_finds_a_bright_spot() -> None:
    from torch import nn

    from worldmodel.models.dit import SpatialSoftmaxKeypoints

    kp = SpatialSoftmaxKeypoints(3, 1)
    kp.net = nn.Conv2d(3, 1, 1, bias=False)  # a heat map that is the red channel, sharpened
    with torch.no_grad():
        kp.net.weight.copy_(torch.tensor([20.0, 0.0, 0.0]).view(1, 3, 1, 1))
    frames = -torch.ones(2, 3, 16, 20)
    frames[0, 0, 2, 3] = 1.0  # top left
    frames[1, 0, 13, 17] = 1.0  # bottom right
    (x0, x1), (y0, y1) = kp(frames).T.view(2, 2)  # (x, y) of each frame
    assert x0 < -0.5 and y0 < -0.5 and x1 > 0.5 and y1 > 0.5


def test_keypoint_tokens_read_the_context_frames_only() -> None:
    from worldmodel.models import Condition

    torch.manual_seed(0)
    model = build_model("tiny", keypoints=8).eval()
    cfg = model.cfg
    layout = TokenLayout(cfg.context_frames, cfg.future_frames, cfg.grid)
    frames = torch.zeros(1, layout.num_frame_tokens, cfg.patch_dim)
    h = torch.zeros(1, layout.num_tokens, cfg.hidden)
    n_ctx = cfg.context_frames * cfg.grid[0] * cfg.grid[1]

    def tokens(f: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            points = model._keypoints(f, layout, h.dtype, Condition())
            prefix, pos, _ = model._prefix(Condition(None, None, None), layout, h, points)
        assert prefix.shape == (1, cfg.context_frames, cfg.hidden) and pos.shape == (cfg.context_frames, 3)
        return prefix

    base = tokens(frames)
    future = frames.clone()
    future[0, n_ctx:] += 0.5
    assert torch.equal(tokens(future), base)  # future frames never reach the keypoints
    context = frames.clone()
    context[0, 0] += 1.0
    assert not torch.allclose(tokens(context), base)


def test_keypoints_let_a_small_model_reach_for_what_it_sees() -> None:
    # docs/experiments.md: with patches alone the model stays at chance for hundreds of steps; keypoints do it fast
    from worldmodel.evaluation.probes import localisation_error

    assert localisation_error("tiny", 100, keypoints=8) < 0.05  # patches alone: 0.33 (chance) at 100 steps


def test_keypoint_film_conditions_every_token_on_the_keypoints() -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="keypoint_film needs keypoints"):
        build_model("tiny", keypoint_film=True)
    model = build_model("tiny", keypoints=8, keypoint_film=True).eval()
    with torch.no_grad():  # the zero-initialised adaLN and heads would hide the conditioning
        for name, p in model.named_parameters():
            if ("ada" in name or "head" in name) and p.ndim == 2:
                p.normal_(0.0, 0.1)
    cfg = model.cfg
    layout = TokenLayout(cfg.context_frames, cfg.future_frames, cfg.grid)
    g = torch.Generator().manual_seed(1)
    x = Tokens(torch.randn(2, layout.num_frame_tokens, cfg.patch_dim, generator=g),
               torch.randn(2, layout.num_action_tokens, cfg.action_dim, generator=g))
    t = torch.rand(2, layout.num_tokens, generator=g)
    out = model(x, t, layout).pred.actions
    out.square().sum().backward()
    assert model.keypoint_cond[0].weight.grad.abs().sum() > 0  # forward feeds the keypoints to the FiLM path
    with torch.no_grad():
        model.keypoint_cond[2].bias.add_(1.0)
        assert not torch.allclose(model(x, t, layout).pred.actions, out)


def test_keypoint_language_starts_as_identity_and_reaches_the_keypoints_in_forward() -> None:
    from worldmodel.models import Condition

    with pytest.raises(ValueError, match="keypoint_language needs keypoints"):
        build_model("tiny", keypoint_language=True)
    torch.manual_seed(0)
    plain = build_model("tiny", keypoints=8, keypoint_head=True).eval()
    torch.manual_seed(0)
    model = build_model("tiny", keypoints=8, keypoint_head=True, keypoint_language=True).eval()
    assert model.load_state_dict(plain.state_dict(), strict=False).unexpected_keys == []
    cfg = model.cfg
    layout = TokenLayout(cfg.context_frames, cfg.future_frames, cfg.grid)
    g = torch.Generator().manual_seed(1)
    x = Tokens(torch.randn(1, layout.num_frame_tokens, cfg.patch_dim, generator=g),
               torch.randn(1, layout.num_action_tokens, cfg.action_dim, generator=g))
    t = torch.ones(1, layout.num_tokens)
    a, b = (Condition(torch.randn(1, cfg.lang_dim, generator=g)) for _ in range(2))
    with torch.no_grad():  # zero-initialised FiLM: a plain network's keypoints and head, whatever the instruction
        assert torch.allclose(model(x, t, layout, a).points, plain(x, t, layout, a).points)
        points = model(x, t, layout, a).points
        assert torch.allclose(model.keypoint_actions(points, a), plain.keypoint_actions(points))
        for p in (model.keypoint_net.film.weight, model.keypoint_head_task.weight):
            p.normal_(0.0, 0.5)
        assert not torch.allclose(model(x, t, layout, a).points, model(x, t, layout, b).points, atol=1e-4)
        assert not torch.allclose(model.keypoint_actions(points, a), model.keypoint_actions(points, b), atol=1e-4)


def _two_spot_bc(language: bool, steps: int = 120) -> float:
    """Train the keypoint net + head to output the (x, y) of the spot the instruction names (red or green, both in
    every frame at random places); return the held-out MSE of that first action's (x, y)."""
    from worldmodel.models import Condition

    torch.manual_seed(0)
    model = build_model("tiny", keypoints=4, keypoint_head=True, keypoint_language=language)
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    words = torch.randn(2, cfg.lang_dim, generator=g)

    def batch(n: int):
        frames = -torch.ones(n, cfg.context_frames, 3, cfg.frame_height, cfg.frame_width)
        spots = torch.stack([torch.randint(1, cfg.frame_height - 2, (n, 2), generator=g),
                             torch.randint(1, cfg.frame_width - 2, (n, 2), generator=g)], -1)  # (n, colour, (r, c))
        for i in range(n):
            for colour in range(2):
                r, c = spots[i, colour].tolist()
                frames[i, :, colour, r - 1:r + 2, c - 1:c + 2] = 1.0
        named = torch.randint(0, 2, (n,), generator=g)
        where = spots[torch.arange(n), named].float()
        target = torch.stack([where[:, 1] / (cfg.frame_width - 1), where[:, 0] / (cfg.frame_height - 1)], -1) * 2 - 1
        return frames, Condition(words[named]), target

    params = [p for n, p in model.named_parameters() if n.startswith("keypoint")]
    opt = torch.optim.Adam(params, lr=3e-3)
    for _ in range(steps):
        frames, cond, target = batch(32)
        pred = model.keypoint_actions(model.keypoints(frames, cond), cond)[:, 0, :2]
        loss = (pred - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    frames, cond, target = batch(256)
    with torch.no_grad():
        pred = model.keypoint_actions(model.keypoints(frames, cond), cond)[:, 0, :2]
    return (pred - target).pow(2).mean().item()


def test_keypoint_language_lets_the_keypoints_follow_the_named_object() -> None:
    # a keypoint net that reads no language can only average the two spots (docs/experiments.md, sixth session)
    with_language, without = _two_spot_bc(True), _two_spot_bc(False)
    assert with_language < 0.1 * without, (with_language, without)  # measured: 0.0003 vs 0.17


def test_vision_probe_reports_frames_and_object_positions() -> None:
    from worldmodel import WorldModel
    from worldmodel.evaluation.probes import vision_probe

    rows = vision_probe(WorldModel.random("tiny", seed=0), xs=(0.35, 0.5), ys=(-0.1,), n=2, steps=1)
    assert [r.label for r in rows[:3]] == ["real frame", "black frame", "noise frame"]
    assert len(rows) == 5 and all(r.model.shape == (3,) for r in rows)
    assert rows[0].expert is None and all(r.expert is not None for r in rows[3:])
    assert rows[3].expert[0] < rows[4].expert[0]  # the expert reaches further in x for the farther can


def test_vision_probe_without_state_hides_it_from_the_model() -> None:
    from worldmodel import WorldModel
    from worldmodel.evaluation.probes import vision_probe

    wm, seen = WorldModel.random("tiny", seed=0), []
    propose = wm.propose

    def recording(frames, obs, **kwargs):
        seen.append(set(obs))
        return propose(frames, obs, **kwargs)

    wm.propose = recording
    vision_probe(wm, xs=(0.4,), ys=(-0.1,), n=1, steps=1, use_state=False)
    assert len(seen) == 4 and all("natural_language_instruction" in keys for keys in seen)
    assert not any(keys & {"base_pose_tool_reached", "gripper_closed"} for keys in seen)


def test_follow_slope_reads_how_far_the_model_follows_the_expert() -> None:
    from worldmodel.evaluation.probes import ProbeRow, follow_slope

    rng = np.random.default_rng(0)
    expert = rng.normal(0.0, 0.05, (9, 3))
    frame = ProbeRow("real frame", np.ones(3))  # no expert: skipped
    half = [frame] + [ProbeRow(f"g{i}", 0.5 * e + np.array([0.07, -0.03, 0.0]), e) for i, e in enumerate(expert)]
    slope, r2 = follow_slope(half)
    assert slope == pytest.approx(0.5) and r2 == pytest.approx(1.0)
    flat = [ProbeRow(f"g{i}", np.array([0.07, -0.03, 0.0]) + 1e-4 * rng.normal(size=3), e)
            for i, e in enumerate(expert)]
    assert abs(follow_slope(flat)[0]) < 0.05
    with pytest.raises(ValueError, match="two grid rows"):
        follow_slope([frame, half[1]])


def test_expert_trajectory_probe_phases_and_summary() -> None:
    from types import SimpleNamespace

    from worldmodel.evaluation.probes import PHASES, expert_trajectory_probe, trajectory_summary

    class AlwaysCloses:  # a "model" whose every first action moves +x with the gripper closing
        def propose(self, frames, obs, n, steps, generator):
            return SimpleNamespace(actions=np.tile(np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32), (n, 2, 1)))

    rows = expert_trajectory_probe(AlwaysCloses(), "MoveNear", seed=10003, n=2, steps=1)
    phases = [r.phase for r in rows]
    # the noise-free expert reaches, closes, carries the source and lets it go, in that order
    assert [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]] == list(PHASES)
    summary = trajectory_summary(rows)
    assert summary["reach"]["gripper"] == 0.0 and summary["carry"]["gripper"] == 1.0  # open vs close
    assert summary["close"]["distance"] < summary["reach"]["distance"]  # the hand is at the object when closing
    assert sum(s["steps"] for s in summary.values()) == len(rows)
    # a model that copies the expert scores cosine 1 and full gripper agreement in every phase
    copied = [replace(r, model=r.expert.copy()) for r in rows]
    for part in trajectory_summary(copied).values():
        assert part["gripper"] == 1.0 and (np.isnan(part["cosine"]) or part["cosine"] == pytest.approx(1.0))


def test_dynamics_probe_tells_an_imagination_that_follows_the_action_from_one_that_does_not() -> None:
    import envs
    from worldmodel import WorldModel
    from worldmodel.evaluation.probes import axis_chunks, dynamics_probe

    chunks = axis_chunks(np.array([0.05, 0.04, 0.03]), 3)
    assert chunks.shape == (6, 3, 7) and chunks[1, 0, 0] == -0.05 and chunks[4, 2, 2] == 0.03
    assert np.count_nonzero(chunks) == 6 * 3  # one axis per chunk, rotation and gripper zero

    wm = WorldModel.random("tiny", seed=0)

    class Simulated:  # a perfect world model: it "imagines" by executing the chunk from the same episode start
        encode_frames, decode_frames = wm.encode_frames, wm.decode_frames

        def imagine(self, frames, obs, chunks, steps, generator, shared_noise=False):
            out = []
            for chunk in chunks:
                env = envs.make("PickCan")
                env.reset(seed=10003)
                out.append(np.stack([env.step(a)[0]["image"] for a in chunk]))
                env.close()
            return wm.decode_frames(wm.encode_frames(np.stack(out)), frames.shape[-3:-1])  # at the context's size

    perfect = dynamics_probe(Simulated(), "PickCan", 10003, horizon=2, steps=1)
    assert perfect.true.shape == perfect.imagined.shape == (6, 2, wm.cfg.frame_height, wm.cfg.frame_width, 3)
    assert perfect.response.corr == pytest.approx(1.0) and perfect.response.true_spread > 0
    untrained = dynamics_probe(wm, "PickCan", 10003, horizon=2, steps=1)  # same noise, actions it cannot read
    assert untrained.response.true_spread == pytest.approx(perfect.response.true_spread)
    assert abs(untrained.response.corr) < 0.9  # defined: the true futures differ
