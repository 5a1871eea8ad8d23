"""``worldmodel eval sim policy=planner|dit checkpoint=...``: one short episode end to end with a tiny checkpoint."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import pytest

from worldmodel.cli import main

FAST = {
    "planner": ["planner.num_candidates=4", "planner.horizon=2", "planner.sampling_steps=1", "planner.execute_steps=2"],
    "dit": ["policy.sampling_steps=1"],
}


@pytest.mark.parametrize("policy", ["planner", "dit"])
def test_eval_sim_with_a_checkpoint(tmp_path, write_tiny_checkpoint, policy):
    ckpt = write_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "eval"
    rc = main(["eval", "sim", f"policy={policy}", f"checkpoint={ckpt}", "eval.tasks=[PickCan]", "eval.episodes=1",
               "eval.seed=5", f"eval.out={out}", "eval.image_size=[32,40]", "eval.videos=true", "policy.device=cpu",
               *FAST[policy]])
    assert rc == 0
    info = json.loads((out / "eval_info.json").read_text())
    assert info["policy"]["checkpoint"] == str(ckpt)
    if policy == "planner":  # the planner group reaches the policy
        assert info["policy"]["planner"]["num_candidates"] == 4
    episode = info["per_episode"][0]
    assert 0 < episode["steps"] <= 80  # PickCan's step limit
    assert episode["extras"]["decisions"] == len(episode["extras"]["decision_ms"]) > 0
    for block in (info["per_task"]["PickCan"], info["overall"]):
        assert 0 < block["decision_ms_p50"] <= block["decision_ms_p95"]
        assert block["n_decisions"] == episode["extras"]["decisions"]
    reader = imageio.get_reader(out / "videos" / "PickCan_seed5.mp4")
    assert reader.get_meta_data()["size"] == (80, 32)  # real | imagined, side by side
    reader.close()
