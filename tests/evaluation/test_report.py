"""The demo report: tables, plots and copied videos from eval_info.json and metrics.jsonl files."""

from __future__ import annotations

import json

from worldmodel.cli import main
from worldmodel.evaluation.report import build_report


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
