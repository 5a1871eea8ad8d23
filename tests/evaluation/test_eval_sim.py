"""The closed-loop evaluation harness and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldmodel.cli import main
from worldmodel.evaluation import mcnemar_exact, wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    lo, hi = wilson_interval(100, 100)
    assert hi == 1.0 and lo == pytest.approx(0.963, abs=1e-3)
    assert wilson_interval(50, 50)[1] == 1.0 and wilson_interval(0, 50)[0] == 0.0  # exact, not 1 - 1e-16
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 6) == 2 * 0.5**6
    assert mcnemar_exact(5, 1) == mcnemar_exact(1, 5) == 2 * (1 + 6) / 64
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_eval_sim_writes_lerobot_style_json(tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["eval", "sim", "policy=scripted", "eval.tasks=[PickCan,CloseDrawer]", "eval.episodes=2",
               "eval.seed=7", f"eval.out={out}", "eval.image_size=[32,40]", "eval.videos=true"])
    assert rc == 0
    info = json.loads((out / "eval_info.json").read_text())
    assert [e["seed"] for e in info["per_episode"]] == [7, 8, 7, 8]
    assert [e["task"] for e in info["per_episode"]] == ["PickCan"] * 2 + ["CloseDrawer"] * 2
    pick = info["per_task"]["PickCan"]
    assert pick["n_episodes"] == 2 and pick["pc_success"] == 100.0 and pick["n_success"] == 2
    overall = info["overall"]
    assert overall["n_success"] == sum(e["success"] for e in info["per_episode"])
    assert overall["pc_success"] == 100.0 * overall["n_success"] / overall["n_episodes"]
    assert set(pick["pc_stage_success"]) == {"grasp", "lift"}
    assert pick["ci95"][0] < 100.0 <= pick["ci95"][1]
    assert info["overall"]["n_episodes"] == 4
    assert len(list((out / "videos").glob("*.mp4"))) == 4
    assert "PickCan" in capsys.readouterr().out


def test_eval_sim_is_reproducible(tmp_path, monkeypatch):
    # A random policy on MoveNear never succeeds, so the episode records alone would match whatever the actions
    # were: record the actions themselves.
    from policies.random_policy import RandomPolicy

    taken: list[np.ndarray] = []
    real = RandomPolicy.select_action

    def recording(self, obs):
        action = real(self, obs)
        taken.append(action.copy())
        return action

    monkeypatch.setattr(RandomPolicy, "select_action", recording)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        taken.clear()
        assert main(["eval", "sim", "policy=random", "eval.tasks=[MoveNear]", "eval.episodes=1", f"eval.seed={seed}",
                     f"eval.out={tmp_path / name}", "eval.image_size=[32,40]"]) == 0
        episode = json.loads((tmp_path / name / "eval_info.json").read_text())["per_episode"][0]
        runs[name] = (np.stack(taken), episode)
    (a, ep_a), (b, ep_b), (c, _) = runs["a"], runs["b"], runs["c"]
    assert len(a) == ep_a["steps"] > 0
    np.testing.assert_array_equal(a, b)
    keys = ("steps", "success", "instruction")
    assert [ep_a[k] for k in keys] == [ep_b[k] for k in keys]
    assert not np.array_equal(a[:5], c[:5])  # another seed, other actions


@pytest.mark.parametrize("override, message", [
    ("eval.bogus=1", "eval.bogus"),
    ("eval.tasks=[Nope]", "unknown task 'Nope'"),
    ("eval.episodes=0", "eval.episodes"),
    ("policy=telepathy", "telepathy"),
])
def test_eval_sim_bad_config_is_one_clear_error(tmp_path, capsys, override, message):
    rc = main(["eval", "sim", override, f"eval.out={tmp_path}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "eval_info.json").exists()


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "eval sim" in capsys.readouterr().out
    assert main(["fly", "away"]) == 2


def _records(info):
    return [{k: v for k, v in e.items() if k != "wall_time_s"} for e in info["per_episode"]]


def test_eval_sim_resumes_a_stopped_evaluation(tmp_path, monkeypatch, capsys):
    import worldmodel.evaluation.sim as sim

    args = ["eval", "sim", "policy=scripted", "eval.tasks=[PickCan,CloseDrawer]", "eval.episodes=2", "eval.seed=5",
            "eval.image_size=[32,40]"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*args, f"eval.out={whole}"]) == 0
    full = json.loads((whole / "eval_info.json").read_text())
    lines = (whole / "episodes.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["header"]["policy"]["name"] == "scripted" and len(lines) == 1 + 4

    # A run stopped after two episodes, while writing the third: the header, two records, half a line.
    cut.mkdir()
    (cut / "episodes.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    ran: list[tuple[str, int]] = []
    real = sim.run_episode
    monkeypatch.setattr(sim, "run_episode", lambda task, seed, *rest: ran.append((task, seed)) or
                        real(task, seed, *rest))
    assert main([*args, f"eval.out={cut}", "eval.resume=true"]) == 0
    done = {(r["task"], r["seed"]) for r in map(json.loads, lines[1:3])}
    assert sorted(ran) == sorted({(e["task"], e["seed"]) for e in full["per_episode"]} - done)
    resumed = json.loads((cut / "eval_info.json").read_text())
    assert _records(resumed) == _records(full) and resumed["resumed_episodes"] == 2
    log = [json.loads(line) for line in (cut / "episodes.jsonl").read_text().splitlines()]  # the cut line is gone
    assert len(log) == 1 + 4 and sorted((r["task"], r["seed"]) for r in log[1:]) == sorted(done | set(ran))
    assert resumed["overall"] == full["overall"]
    untimed = [{t: {k: v for k, v in agg.items() if k != "avg_wall_time_s"} for t, agg in info["per_task"].items()}
               for info in (resumed, full)]
    assert untimed[0] == untimed[1]

    # Without eval.resume the log starts afresh and every episode runs again.
    ran.clear()
    assert main([*args, f"eval.out={cut}"]) == 0
    assert len(ran) == 4 and len((cut / "episodes.jsonl").read_text().splitlines()) == 1 + 4
    capsys.readouterr()


def test_eval_sim_resume_refuses_episodes_of_other_settings(tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["eval.tasks=[CloseDrawer]", "eval.episodes=1", "eval.seed=5", "eval.image_size=[32,40]", f"eval.out={out}"]
    assert main(["eval", "sim", "policy=scripted", *args]) == 0
    log = (out / "episodes.jsonl").read_text()
    capsys.readouterr()
    assert main(["eval", "sim", "policy=random", *args, "eval.episodes=2", "eval.resume=true"]) == 2
    err = capsys.readouterr().err
    assert "episodes.jsonl" in err and "policy.name" in err and err.count("\n") == 1
    assert (out / "episodes.jsonl").read_text() == log  # left as it was
