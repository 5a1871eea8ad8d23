"""Instruction and state tokens, language dropout and classifier-free guidance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel.language import embed_instruction, instruction_tokens
from worldmodel.models import Condition, TokenLayout, Tokens, build_model
from worldmodel.objectives import GenerationContext, generate
from worldmodel.objectives.sampling import guided_velocity_fn, model_velocity_fn, sample

A, B = "move apple near sponge", "move sponge near apple"


def _randomised(**overrides):
    """A tiny model whose zero-initialised adaLN / heads are randomised, so outputs depend on every input."""
    torch.manual_seed(0)
    model = build_model("tiny", **{"instruction_tokens": 16, "state_dim": 8, **overrides})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("ada" in name or "head" in name) and p.ndim == 2:
                p.normal_(0.0, 0.1)
    return model.eval()


def _inputs(model, b: int = 2):
    cfg = model.cfg
    layout = TokenLayout(cfg.context_frames, cfg.future_frames, cfg.grid)
    g = torch.Generator().manual_seed(1)
    x = Tokens(torch.randn(b, layout.num_frame_tokens, cfg.patch_dim, generator=g),
               torch.randn(b, layout.num_action_tokens, cfg.action_dim, generator=g))
    t = torch.rand(b, layout.num_tokens, generator=g)
    return x, t, layout


def _cond(texts: list[str], state: torch.Tensor | None = None) -> Condition:
    lang = torch.from_numpy(np.stack([embed_instruction(s) for s in texts]))
    instr = torch.from_numpy(np.stack([instruction_tokens(s) for s in texts]))
    return Condition(lang, instr, state)


def test_instruction_tokens_keep_word_order() -> None:
    # the pooled sentence embeddings are nearly the same vector ...
    a, b = embed_instruction(A), embed_instruction(B)
    assert float(a @ b) > 0.95
    # ... the token states are not: same words, different positions and contexts
    ta, tb = instruction_tokens(A), instruction_tokens(B)
    assert ta.shape == (16, 384) and not (ta[6:] != 0).any()  # [CLS] 4 words [SEP], then padding
    rows = (ta[:6] * tb[:6]).sum(-1) / np.linalg.norm(ta[:6], axis=-1) / np.linalg.norm(tb[:6], axis=-1)
    assert rows[2] < 0.9 and rows[4] < 0.9  # "apple" vs "sponge" in slots 2 and 4
    assert instruction_tokens(A, 3).shape == (3, 384)


def test_model_output_depends_on_the_instruction_tokens() -> None:
    model = _randomised()
    x, t, layout = _inputs(model)
    with torch.no_grad():
        out_a = model(x, t, layout, _cond([A, A])).pred.actions
        out_b = model(x, t, layout, _cond([B, B])).pred.actions
    assert (out_a - out_b).abs().max() > 1e-3


def test_padding_and_missing_parts_are_no_information() -> None:
    model = _randomised()
    x, t, layout = _inputs(model)
    cond = _cond([A, B], torch.randn(2, 1, 8))
    with torch.no_grad():
        # an all-padding instruction (dropped language) is the same as giving none
        blank = model(x, t, layout, Condition(cond.lang, torch.zeros_like(cond.instruction), cond.state)).pred
        none = model(x, t, layout, Condition(cond.lang, None, cond.state)).pred
        assert torch.allclose(blank.frames, none.frames, atol=1e-5)
        assert torch.allclose(blank.actions, none.actions, atol=1e-5)
        full = model(x, t, layout, cond).pred.actions
        # the state reaches the output
        moved = model(x, t, layout, Condition(cond.lang, cond.instruction, cond.state + 1.0)).pred.actions
    assert (full - moved).abs().max() > 1e-3


def test_bad_condition_shapes_name_the_part() -> None:
    model = _randomised()
    x, t, layout = _inputs(model)
    with pytest.raises(ValueError, match="instruction must be"):
        model(x, t, layout, Condition(None, torch.ones(2, 5, 384)))
    with pytest.raises(ValueError, match="state must be"):
        model(x, t, layout, Condition(None, None, torch.ones(2, 3, 8)))


def test_guidance_scale_one_is_the_plain_model_and_zero_the_null_branch() -> None:
    model = _randomised()
    x, t, layout = _inputs(model)
    cond = _cond([A, B], torch.randn(2, 1, 8))
    with torch.no_grad():
        plain = model_velocity_fn(model, layout, cond)(x, t)
        one = guided_velocity_fn(model, layout, cond, 1.0)(x, t)
        zero = guided_velocity_fn(model, layout, cond, 0.0)(x, t)
        null = model_velocity_fn(model, layout, cond.without_language())(x, t)
        three = guided_velocity_fn(model, layout, cond, 3.0)(x, t)
    assert torch.equal(one.frames, plain.frames) and torch.equal(one.actions, plain.actions)
    assert torch.allclose(zero.actions, null.actions, atol=1e-5)
    assert torch.allclose(three.actions, null.actions + 3.0 * (plain.actions - null.actions), atol=1e-4)
    # end to end: generate() with guidance 1 draws exactly what it draws unguided
    ctx = torch.rand(2, 1, 3, model.cfg.frame_height, model.cfg.frame_width) * 2 - 1
    runs = [generate(model, "policy", GenerationContext(ctx, 2, None, cond, g), 3,
                     torch.Generator().manual_seed(5)) for g in (1.0, 1.0, 2.0)]
    assert torch.equal(runs[0].actions, runs[1].actions) and not torch.equal(runs[0].actions, runs[2].actions)


def test_temperature_scales_only_the_actions_initial_noise() -> None:
    # identity velocity field of zero: the sample is its initial noise, so the scale is read off exactly
    x_clean = Tokens(torch.zeros(2, 6, 12), torch.zeros(2, 3, 7))
    generated = torch.ones(2, 9, dtype=torch.bool)

    def zero(x, t):
        return Tokens(torch.zeros_like(x.frames), torch.zeros_like(x.actions))

    draws = {tau: sample(zero, x_clean, generated, 2, torch.Generator().manual_seed(3), temperature=tau)
             for tau in (1.0, 0.5, 0.0)}
    assert torch.equal(draws[0.5].frames, draws[1.0].frames)  # the frames' noise is untouched
    assert torch.allclose(draws[0.5].actions, 0.5 * draws[1.0].actions) and not draws[0.0].actions.any()
    with pytest.raises(ValueError, match="temperature"):
        sample(zero, x_clean, generated, 2, temperature=-1.0)


def test_language_dropout_keeps_the_state() -> None:
    cond = _cond([A, B], torch.ones(2, 1, 8))
    dropped = cond.drop_language(torch.tensor([True, False]))
    assert not dropped.lang[0].any() and not dropped.instruction[0].any()
    assert torch.equal(dropped.lang[1], cond.lang[1]) and torch.equal(dropped.instruction[1], cond.instruction[1])
    assert torch.equal(dropped.state, cond.state)


@pytest.mark.parametrize("instruction_tokens", [16, 0])  # 0: the state alone decides whether keys are masked
def test_state_dropout_leaves_the_state_token_out(instruction_tokens: int) -> None:
    model = _randomised(instruction_tokens=instruction_tokens)
    x, t, layout = _inputs(model)
    state = torch.randn(2, model.cfg.context_frames, 8, generator=torch.Generator().manual_seed(2))
    cond = _cond([A, A], state)
    if not instruction_tokens:
        cond = Condition(cond.lang, None, cond.state)
    dropped = cond.drop_state(torch.tensor([True, False]))
    assert dropped.state[0].isnan().all() and torch.equal(dropped.state[1], state[1])
    assert torch.equal(dropped.lang, cond.lang) and (dropped.instruction is cond.instruction
                                                      or torch.equal(dropped.instruction, cond.instruction))
    with torch.no_grad():
        out = model(x, t, layout, dropped).pred.actions
        full = model(x, t, layout, cond).pred.actions
        stateless = model(x, t, layout, Condition(cond.lang, cond.instruction, None)).pred.actions
    assert torch.isfinite(out).all()
    # a dropped sample is the model without state tokens; the kept one is untouched by its neighbour's drop
    assert torch.allclose(out[0], stateless[0], atol=1e-5) and not torch.allclose(out[0], full[0], atol=1e-3)
    assert torch.equal(out[1], full[1])


def test_action_only_layout_has_no_future_frames() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", future_frame_tokens=False).eval()
    cfg = model.cfg
    layout = TokenLayout(cfg.context_frames, cfg.future_frames, cfg.grid, future_frame_tokens=False)
    assert layout.num_tokens == cfg.context_frames * layout.tokens_per_frame + cfg.future_frames
    from worldmodel.models.layout import generated_mask

    assert generated_mask("policy", layout).sum() == cfg.future_frames  # actions only
    with pytest.raises(ValueError, match="policy verb only"):
        generated_mask("dynamics", layout)
    ctx = torch.zeros(2, cfg.context_frames, 3, cfg.frame_height, cfg.frame_width)
    res = generate(model, "policy", GenerationContext(ctx, cfg.future_frames), 2, torch.Generator().manual_seed(0))
    assert res.frames is None and res.actions.shape == (2, cfg.future_frames, 7)
