"""The demo report: tables, plots and copied videos from eval_info.json and metrics.jsonl files."""

from __future__ import annotations

import json

from worldmodel.cli import main
from worldmodel.evaluation.report import build_report, training_minutes


def test_report_from_real_eval_and_metrics(tmp_path):
    evals = {}
    for name, policy in (("scripted", "scripted"), ("random", "random")):
        evals[name] = tmp_path / name
        assert main(["eval", "sim", f"policy={policy}", "eval.tasks=[CloseDrawer,StoreApple]", "eval.episodes=1",
                     f"eval.out={evals[name]}", "eval.image_size=[32,40]", "eval.videos=true"]) == 0
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "loss/total": 1.0 / s, "loss/flow": 0.8 / s, "loss/rep": 0.2 / s} for s in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))

    readme = build_report(tmp_path / "report", evals, {"pretrain": run}, notes=["made by a test"])
    text = readme.read_text()
    scripted = json.loads((evals["scripted"] / "eval_info.json").read_text())["per_task"]["CloseDrawer"]
    assert f"| CloseDrawer | {scripted['pc_success']:.0f} (" in text
    assert "| scripted | StoreApple | open 100, place 100, close 100 |" in text
    assert "made by a test" in text
    for png in ("success.png", "loss_curves.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
    assert len(list((tmp_path / "report" / "videos").glob("*.mp4"))) == 4
    random = json.loads((evals["random"] / "eval_info.json").read_text())["per_episode"]
    only_random = sum(e["success"] for e in random)  # the scripted expert solves both tasks (stages above)
    assert f"| random | 2 | {only_random} | {2 - only_random} |" in text


def test_paired_table_counts_the_discordant_shared_episodes(tmp_path):
    def info(successes):
        episodes = [{"task": t, "seed": s, "success": ok} for (t, s), ok in successes.items()]
        k = sum(successes.values())
        return {"per_task": {}, "overall": {"pc_success": 100.0 * k / len(episodes), "ci95": [0.0, 100.0],
                                           "n_episodes": len(episodes)}, "per_episode": episodes}

    base = {("A", s): s < 5 for s in range(10)}                   # solves seeds 0-4
    better = {("A", s): s < 9 for s in range(10)} | {("B", 0): 1}  # also 5-8; task B is not shared
    for name, successes in (("base", base), ("better", better)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval_info.json").write_text(json.dumps(info(successes)))
    text = build_report(tmp_path / "report", {n: tmp_path / n for n in ("base", "better")}, {}).read_text()
    # 10 shared episodes, 4 solved only by `better`, none only by `base`: p = 2 * 0.5**4
    assert "| better | 10 | 4 | 0 | +40.0 | 0.125 |" in text


def test_training_minutes_counts_each_step_once_across_a_resume(tmp_path):
    rows = [{"step": 25, "steps_per_s": 0.5}, {"step": 50, "steps_per_s": 1.0},  # 50 s + 25 s
            {"step": 50, "steps_per_s": 0.1}, {"step": 75, "steps_per_s": 0.25},  # resumed: 50 again, then 100 s
            {"step": 80}]  # a row without a rate adds nothing
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    step, minutes = training_minutes(tmp_path)
    assert step == 75 and abs(minutes - 175 / 60) < 1e-9
    assert training_minutes(tmp_path / "missing") is None
    readme = build_report(tmp_path / "report", {}, {"run": tmp_path})
    assert "| run | 75 | 2.9 |" in readme.read_text()
