"""The fixed 2-D position embedding of frame patches (``model.frame_position``)."""

from __future__ import annotations

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
