"""A ``tiny`` model memorises one clip on CPU, with and without Self-Flow."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models import Projector, VerbSampler, build_model
from worldmodel.objectives import EMA, FlowBatch, ObjectiveConfig, flow_matching_loss, training_loss

STEPS = 200


def _clip(cfg, batch: int, verbs: list[str]) -> FlowBatch:
    g = torch.Generator().manual_seed(0)
    t = cfg.context_frames + cfg.future_frames
    # a smooth clip (a bright square drifting right), the kind of signal a video model sees
    frames = torch.full((1, t, 3, cfg.frame_height, cfg.frame_width), -0.8)
    for i in range(t):
        frames[0, i, :, 8:20, 4 + 6 * i : 16 + 6 * i] = torch.tensor([0.9, 0.1, -0.3])[:, None, None]
    actions = torch.randn(1, cfg.future_frames, 7, generator=g).clamp(-1, 1)
    lang = torch.randn(1, 512, generator=g)
    return FlowBatch.from_clip(
        frames.expand(batch, -1, -1, -1, -1),
        actions.expand(batch, -1, -1),
        lang.expand(batch, -1),
        verbs,
        cfg.context_frames,
        cfg.patch,
    )


@pytest.fixture
def one_thread():
    """A model this small gains nothing from a second thread, and on a busy machine it loses a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("selfflow", [False, True])
def test_tiny_overfits_one_clip(selfflow: bool, one_thread) -> None:
    torch.manual_seed(0)
    model = build_model("tiny")
    projector = Projector(model.cfg.hidden)
    cfg = ObjectiveConfig(selfflow=selfflow)
    ema = EMA(model, decay=0.99)
    opt = torch.optim.AdamW([*model.parameters(), *projector.parameters()], lr=2e-3, weight_decay=0.0)
    verbs = VerbSampler(cfg.verb_probs)
    gen = torch.Generator().manual_seed(1)
    eval_batch = _clip(model.cfg, 64, verbs.sample(64, True, torch.Generator().manual_seed(2)))

    def eval_loss() -> float:
        with torch.no_grad():
            return float(flow_matching_loss(model, eval_batch, cfg, torch.Generator().manual_seed(3)).flow)

    before = eval_loss()
    for _ in range(STEPS):
        batch = _clip(model.cfg, 8, verbs.sample(8, True, gen))
        loss = training_loss(model, batch, cfg, ema.model, projector, gen)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        ema.update(model)
    after = eval_loss()
    # What is asserted is learning, not speed: a wall-clock bound only measures how busy the machine is.
    assert after < before / 10, f"flow loss {before:.4f} -> {after:.4f}"
    if selfflow:
        assert float(loss.cosine) > 0.5  # the projector learned to match the teacher


def test_actions_follow_the_instruction(one_thread) -> None:
    """Two clips with the same frames and opposite actions, told apart only by their instructions (whose sentence
    embeddings are 0.99 alike): the sampled policy actions follow the instruction, and with a blank instruction
    (the dropped-language branch) the samples fall in both modes."""
    import numpy as np

    from worldmodel.language import embed_instruction, instruction_tokens
    from worldmodel.models import Condition
    from worldmodel.objectives import GenerationContext, generate

    torch.manual_seed(0)
    model = build_model("tiny", instruction_tokens=16)
    cfg = ObjectiveConfig(selfflow=False, language_dropout=0.2, verb_probs={"policy": 1.0})
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    texts = ["move apple near sponge", "move sponge near apple"]
    cond = Condition(torch.from_numpy(np.stack([embed_instruction(s) for s in texts])),
                     torch.from_numpy(np.stack([instruction_tokens(s) for s in texts])))
    target = torch.tensor([0.8, -0.8])[:, None, None] * torch.ones(2, model.cfg.future_frames, 7)
    frames = torch.zeros(2, model.cfg.context_frames + model.cfg.future_frames, 3, model.cfg.frame_height,
                         model.cfg.frame_width)
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):  # measured: with the FiLM path they separate by step 50 (attention alone: ~250)
        drop = torch.rand(16, generator=gen) < cfg.language_dropout
        idx = torch.arange(16) % 2
        batch = FlowBatch.from_clip(frames[idx], target[idx], cond.index(idx).drop_language(drop), ["policy"] * 16,
                                    model.cfg.context_frames, model.cfg.patch)
        loss = flow_matching_loss(model, batch, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
    model.eval()
    ctx = frames[:, : model.cfg.context_frames]
    with torch.no_grad():
        res = generate(model, "policy", GenerationContext(ctx, model.cfg.future_frames, None, cond), 8,
                       torch.Generator().manual_seed(2))
        blank = generate(model, "policy", GenerationContext(ctx[:1].expand(32, -1, -1, -1, -1),
                                                            model.cfg.future_frames, None,
                                                            cond.index([0] * 32).without_language()), 8,
                         torch.Generator().manual_seed(2))
    mean = res.actions.mean(dim=(1, 2))
    assert mean[0] > 0.4 and mean[1] < -0.4, mean
    # no instruction: samples of the unconditional model come from both modes
    positive = float((blank.actions.mean(dim=(1, 2)) > 0).float().mean())
    assert 0.1 < positive < 0.9, positive
