"""Token layout, verbs (docs/architecture.md, "The four verbs") and patchify."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models import (
    VERBS,
    TokenLayout,
    VerbSampler,
    batch_generated_mask,
    demonstration_verbs,
    generated_mask,
    patchify,
    unpatchify,
)

K, F, GRID = 2, 3, (2, 3)
P = GRID[0] * GRID[1]

# verb -> (context frames generated, future frames generated, actions generated); None = no action tokens
EXPECTED = {
    "policy": (False, True, True),
    "dynamics": (False, True, False),
    "inverse": (False, False, True),
    "video": (False, True, None),
}


@pytest.mark.parametrize("verb", VERBS)
def test_verb_layouts_match_design(verb: str) -> None:
    ctx, fut, act = EXPECTED[verb]
    layout = TokenLayout(K, F, GRID, has_actions=act is not None)
    gen = generated_mask(verb, layout)
    assert gen.shape == (layout.num_tokens,)
    assert gen.dtype == torch.bool
    assert gen[: K * P].eq(ctx).all()
    assert gen[K * P : (K + F) * P].eq(fut).all()
    if act is None:
        assert layout.num_tokens == (K + F) * P  # samples without actions have no action tokens
    else:
        assert layout.num_tokens == (K + F) * P + F
        assert gen[(K + F) * P :].eq(act).all()


def test_verbs_reject_wrong_layout() -> None:
    with pytest.raises(ValueError, match="video"):
        generated_mask("video", TokenLayout(K, F, GRID, has_actions=True))
    for verb in ("policy", "dynamics", "inverse"):
        with pytest.raises(ValueError, match=verb):
            generated_mask(verb, TokenLayout(K, F, GRID, has_actions=False))
    with pytest.raises(ValueError, match="verb"):
        generated_mask("plan", TokenLayout(K, F, GRID))


def test_verb_sampler_frequencies_and_video_only_without_actions() -> None:
    sampler = VerbSampler({"policy": 0.5, "dynamics": 0.3, "inverse": 0.2})
    verbs = sampler.sample(20_000, True, torch.Generator().manual_seed(0))
    for verb, p in {"policy": 0.5, "dynamics": 0.3, "inverse": 0.2}.items():
        assert abs(verbs.count(verb) / len(verbs) - p) < 0.015
    assert sampler.sample(4, False) == ["video"] * 4
    mask = batch_generated_mask(verbs[:5], TokenLayout(K, F, GRID))
    assert torch.equal(mask[1], generated_mask(verbs[1], TokenLayout(K, F, GRID)))
    with pytest.raises(ValueError, match="verb_probs"):
        VerbSampler({"video": 1.0})
    with pytest.raises(ValueError, match="verb_probs"):
        VerbSampler({"policy": -1.0})


def test_demonstration_verbs_turn_policy_draws_of_non_demonstrations_into_dynamics() -> None:
    verbs = ["policy", "policy", "inverse", "dynamics", "video"]
    assert demonstration_verbs(verbs, [True, False, False, False, False]) == [
        "policy", "dynamics", "inverse", "dynamics", "video"]
    assert demonstration_verbs(verbs, torch.tensor([False, True, True, True, True])) == [
        "dynamics", "policy", "inverse", "dynamics", "video"]
    assert demonstration_verbs(verbs, None) == verbs
    with pytest.raises(ValueError, match="5 verbs but 2 imitate flags"):
        demonstration_verbs(verbs, [True, False])


def test_action_positions_sit_between_the_frames_they_link() -> None:
    layout = TokenLayout(K, F, GRID)
    pos = layout.positions()
    assert pos.shape == (layout.num_tokens, 3)
    actions = pos[(K + F) * P :]
    assert torch.equal(actions[:, 0], torch.tensor([K - 0.5 + i for i in range(F)]))
    # frame patch order: frame-major, then row, then column
    assert pos[P + 1].tolist() == [1.0, 0.0, 1.0]
    assert pos[GRID[1]].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize(("h", "w", "p"), [(32, 40, 8), (64, 80, 16), (16, 48, 16)])
def test_patchify_roundtrip_and_order(h: int, w: int, p: int) -> None:
    frames = torch.randn(2, 3, 3, h, w)
    tokens = patchify(frames, p)
    assert tokens.shape == (2, 3 * (h // p) * (w // p), p * p * 3)
    assert torch.equal(unpatchify(tokens, 3, h, w, p), frames)
    # token 1 of frame 0 is the patch at row 0, column 1; its first value is pixel (0, p) of channel 0
    assert tokens[0, 1, 0] == frames[0, 0, 0, 0, p]
    with pytest.raises(ValueError, match="divisible"):
        patchify(torch.randn(1, 1, 3, h + 1, w), p)
