"""The objective comparison pools closed-loop results over seeds per objective and writes its table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worldmodel.evaluation import compare
from worldmodel.evaluation.compare import CompareSettings

TASKS = CompareSettings().tasks


def _eval_info(path: Path, wins: dict[str, int], n: int, ms: float, counts: bool = True) -> Path:
    # counts=False: an eval_info.json written before n_success existed (rates only)
    per_task = {task: {"pc_success": 100 * w / n, "n_episodes": n, **({"n_success": w} if counts else {})}
                for task, w in wins.items()}
    path.mkdir(parents=True)
    (path / "eval_info.json").write_text(json.dumps({"per_task": per_task, "overall": {"decision_ms_p50": ms}}))
    return path


@pytest.mark.parametrize("counts", [True, False])
def test_summary_pools_seeds_and_writes_table_and_plot(tmp_path, counts):
    args = CompareSettings(objectives=["selfflow", "fm"], seeds=[0, 1], steps=10, horizon=2, model="tiny",
                           episodes=12, val_episodes=6)
    offline, evals = {}, {}
    for objective, base in (("selfflow", 1.0), ("fm", 2.0)):
        for seed in args.seeds:
            name = compare.run_name(objective, seed)
            curve = [{"step": s, "dynamics": {"flow": base + seed + 1 / s}, "policy": {"flow": 2 * base + 1 / s}}
                     for s in (5, 10)]
            offline[name] = {"objective": objective, "seed": seed, "curve": curve, "n_val_clips": 7,
                             "imagination": {"psnr": 20.0 + base, "ssim": 0.5, "psnr_per_step": [21.0, 19.0]}}
            wins = dict.fromkeys(TASKS, 0)
            wins["CloseDrawer"] = 1 + seed if objective == "selfflow" else 0
            none = dict.fromkeys(TASKS, 0)
            evals[name] = {"dit": _eval_info(tmp_path / name / "dit", wins, 4, 50.0 + seed, counts),
                           "planner": _eval_info(tmp_path / name / "planner", none, 2, 600.0, counts)}
    summary = compare.summarize(args, offline, evals, {"train selfflow_seed0": 1.5})
    sf = summary["per_objective"]["selfflow"]
    assert sf["val_flow_dynamics"] == [1.1, 2.1]  # the final checkpoint (step 10) of seed 0 and seed 1
    assert sf["dit"]["per_task"]["CloseDrawer"] == {"successes": 3, "episodes": 8}
    assert sf["dit"]["successes"] == 3 and sf["dit"]["episodes"] == 6 * 8
    assert sf["dit"]["ci95"][0] < sf["dit"]["pc_success"] < sf["dit"]["ci95"][1]
    assert sf["dit"]["decision_ms_p50"] == 50.5
    assert summary["per_objective"]["fm"]["planner"]["successes"] == 0
    table = compare.write_table(summary, args, tmp_path, "python scripts/compare_objectives.py").read_text()
    assert "| Self-Flow | dit | 0/8 | 0/8 | 0/8 | 3/8 | 0/8 | 0/8 |" in table
    assert "3/48 = 6.2 %" in table and "1.6000 ± 0.7071" in table  # mean ± std of 1.1 and 2.1
    png = compare.plot(summary, args, tmp_path)
    assert png.stat().st_size > 10_000
