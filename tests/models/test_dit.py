"""VideoActionDiT: shapes, per-token conditioning, hidden states, RoPE, checkpointing."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models import TokenLayout, Tokens, build_model
from worldmodel.models.dit import RMSNorm, apply_rope, rope_tables, timestep_features


def _inputs(model, batch=2, frames=3, hw=None, actions=True, seed=0):
    cfg = model.cfg
    h, w = hw or (cfg.frame_height, cfg.frame_width)
    layout = TokenLayout(1, frames - 1, (h // cfg.patch, w // cfg.patch), actions)
    g = torch.Generator().manual_seed(seed)
    x = Tokens(
        torch.randn(batch, layout.num_frame_tokens, cfg.patch_dim, generator=g),
        torch.randn(batch, layout.num_action_tokens, cfg.action_dim, generator=g) if actions else None,
    )
    t = torch.rand(batch, layout.num_tokens, generator=g)
    return x, t, layout, torch.randn(batch, cfg.lang_dim, generator=g)


def _randomise(model: torch.nn.Module) -> None:
    """Give the zero-initialised adaLN and heads random weights so that they carry signal."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize(("hw", "actions"), [((32, 40), True), ((16, 48), True), ((24, 24), False)])
def test_shapes_any_resolution(hw, actions) -> None:
    model = build_model("tiny")
    x, t, layout, lang = _inputs(model, hw=hw, actions=actions)
    out = model(x, t, layout, lang, return_hidden=(1, 4))
    assert out.pred.frames.shape == x.frames.shape
    assert (out.pred.actions is None) == (not actions)
    if actions:
        assert out.pred.actions.shape == x.actions.shape
    assert set(out.hidden) == {1, 4}
    assert out.hidden[1].shape == (2, layout.num_tokens, model.cfg.hidden)


def test_adaln_zero_init_outputs_zero() -> None:
    model = build_model("tiny")
    x, t, layout, lang = _inputs(model)
    out = model(x, t, layout, lang)
    assert out.pred.frames.abs().max() == 0 and out.pred.actions.abs().max() == 0


def test_changing_one_tokens_time_changes_only_its_modulation() -> None:
    model = build_model("tiny")
    _randomise(model)
    x, t, layout, lang = _inputs(model)
    t2 = t.clone()
    t2[1, 5] = 0.123
    c1, i1 = model.condition(t, lang)
    c2, i2 = model.condition(t2, lang)
    for block in model.blocks:
        m1, m2 = block.modulation(c1, i1), block.modulation(c2, i2)  # (B, N, 6D)
        changed = (m1 - m2).abs().amax(-1) > 0  # (B, N)
        expected = torch.zeros_like(changed)
        expected[1, 5] = True
        assert torch.equal(changed, expected)


def test_deduplicated_conditioning_equals_per_token_computation() -> None:
    model = build_model("tiny")
    _randomise(model)
    x, t, layout, lang = _inputs(model)
    t[:, ::2] = 1.0  # repeated values exercise the de-duplication
    c_act, index = model.condition(t, lang)
    b, n = t.shape
    naive = (
        model.time_embed(timestep_features(t.reshape(-1))).reshape(b, n, -1) + model.lang_embed(lang)[:, None]
    )
    torch.testing.assert_close(c_act[index], torch.nn.functional.silu(naive), rtol=1e-5, atol=1e-6)


def test_language_changes_the_output() -> None:
    model = build_model("tiny")
    _randomise(model)
    x, t, layout, lang = _inputs(model)
    a = model(x, t, layout, lang).pred.frames
    b = model(x, t, layout, torch.zeros_like(lang)).pred.frames
    assert not torch.allclose(a, b)


def test_hidden_states_in_one_pass_equal_truncated_runs() -> None:
    model = build_model("tiny")
    _randomise(model)
    x, t, layout, lang = _inputs(model)
    out = model(x, t, layout, lang, return_hidden=(1, 3))
    for k in (1, 3):
        torch.testing.assert_close(out.hidden[k], model.features(x, t, layout, lang, k))
    with pytest.raises(ValueError, match="return_hidden"):
        model(x, t, layout, lang, return_hidden=(5,))


def test_rope_scores_depend_only_on_relative_position() -> None:
    q, k = torch.randn(1, 1, 1, 12), torch.randn(1, 1, 1, 12)

    def score(pq, pk):
        cq, sq = rope_tables(torch.tensor([pq], dtype=torch.float32), 12, 100.0)
        ck, sk = rope_tables(torch.tensor([pk], dtype=torch.float32), 12, 100.0)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    base = score([1.0, 2.0, 0.0], [0.0, 1.0, 3.0])
    torch.testing.assert_close(score([4.5, 7.0, 2.0], [3.5, 6.0, 5.0]), base, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score([1.0, 2.0, 0.0], [0.0, 1.0, 4.0]), base)


def test_activation_checkpointing_gives_same_gradients() -> None:
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = build_model("tiny", checkpointing=ckpt).train()
        _randomise(model)
        x, t, layout, lang = _inputs(model)
        out = model(x, t, layout, lang)
        (out.pred.frames.square().mean() + out.pred.actions.square().mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_mismatched_inputs_are_rejected() -> None:
    model = build_model("tiny")
    x, t, layout, lang = _inputs(model)
    with pytest.raises(ValueError, match="has_actions"):
        model(Tokens(x.frames, None), t, layout, lang)
    with pytest.raises(ValueError, match="token counts"):
        model(x, t[:, 1:], layout, lang)


def test_qk_rmsnorm_hands_the_kernel_a_weight_of_the_input_dtype(monkeypatch) -> None:
    """A bf16 input gets the fp32 weight cast to bf16 (the fused kernel's condition), with nn.RMSNorm's values."""
    import worldmodel.models.dit as dit

    norm, ref = RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
        ref.weight.copy_(norm.weight)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(norm(x), ref(x))
    seen = []

    def spy(inp, shape, weight, eps):
        seen.append((inp.dtype, weight.dtype))
        return torch.rms_norm(inp, shape, weight, eps)

    monkeypatch.setattr(dit.F, "rms_norm", spy)
    y = norm(x.bfloat16())
    assert seen == [(torch.bfloat16, torch.bfloat16)] and norm.weight.dtype == torch.float32
    torch.testing.assert_close(y.float(), ref(x), atol=0.05, rtol=0.02)
    assert type(build_model("tiny").blocks[0].attn.q_norm) is RMSNorm
