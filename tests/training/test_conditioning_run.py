"""Fine-tuning with instruction and state tokens: the clips carry them, the statistics travel with the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import DATASET, run_cli
from worldmodel.data.reader import episode_states, open_rlds
from worldmodel.training import load_checkpoint
from worldmodel.world_model import WorldModel

TOKENS = ["model.instruction_tokens=16", "model.state_dim=8", "objective.language_dropout=0.2",
          "data.clips_per_episode=3"]


@pytest.fixture(scope="module")
def run(common, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cond")
    assert run_cli("finetune", "rt1", *common, *TOKENS, f"run_dir={run_dir}") == 0
    return run_dir


def test_state_statistics_round_trip_through_the_checkpoint(run, data_root) -> None:
    states = np.concatenate([episode_states(ep["steps"]["observation"])
                             for ep in open_rlds(data_root / DATASET / "0.1.0").episodes(decode_images=False)])
    loaded = load_checkpoint(run)
    assert loaded.model.cfg.instruction_tokens == 16 and loaded.model.cfg.state_dim == 8
    np.testing.assert_allclose(loaded.action_stats.state_mean, states.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.action_stats.state_std, states.std(0), rtol=1e-4, atol=1e-6)
    wm = WorldModel.from_checkpoint(run)
    np.testing.assert_allclose(wm.stats.state_mean, loaded.action_stats.state_mean)
    # an observation's state is normalised with those statistics
    obs = {"natural_language_instruction": "pick coke can", "base_pose_tool_reached": states[0, :7],
           "gripper_closed": states[0, 7:]}
    cond = wm.embed_language(obs, 1)
    expected = (states[0] - states.mean(0)) / np.maximum(states.std(0), 1e-3)
    np.testing.assert_allclose(cond.state[0, -1].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert cond.instruction.shape == (1, 16, 384) and cond.lang.shape == (1, 512)


def test_world_model_verbs_take_an_observation(run) -> None:
    wm = WorldModel.from_checkpoint(run)
    frames = np.zeros((1, 32, 40, 3), np.uint8)
    obs = {"natural_language_instruction": "open top drawer", "base_pose_tool_reached": np.zeros(7, np.float32),
           "gripper_closed": np.zeros(1, np.float32)}
    prop = wm.propose(frames, obs, n=3, steps=2)
    assert prop.actions.shape == (3, 2, 7) and np.isfinite(prop.actions).all()
    guided = wm.propose(frames, obs, n=3, steps=2, guidance=2.0)
    assert guided.actions.shape == (3, 2, 7)
    assert wm.imagine(frames, obs, prop.actions, steps=2).shape == (3, 2, 32, 40, 3)
    assert wm.progress(np.zeros((3, 32, 40, 3), np.uint8), obs).shape == (3,)
