"""scripts/report.py: the report of named evaluation folders, and one clear error for a bad argument."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "report.py")


def _eval(folder: Path, successes: list[bool]) -> None:
    folder.mkdir()
    episodes = [{"task": "PickCan", "seed": s, "success": ok} for s, ok in enumerate(successes)]
    k = sum(successes)
    overall = {"pc_success": 100.0 * k / len(successes), "ci95": [0.0, 100.0], "n_episodes": len(successes)}
    task = {**overall, "stage_names": ["grasp", "lift"], "pc_stage_success": {"grasp": 50.0, "lift": 25.0}}
    (folder / "eval_info.json").write_text(json.dumps({"per_task": {"PickCan": task}, "overall": overall,
                                                       "per_episode": episodes}))


def test_report_names_rows_and_pairs_them_with_the_first(tmp_path):
    _eval(tmp_path / "a", [True, False, False, False])
    _eval(tmp_path / "b", [True, True, True, False])
    out = subprocess.run([sys.executable, SCRIPT, "--out", str(tmp_path / "report"), "--title", "Two runs",
                          "--eval", f"the reference={tmp_path / 'a'}", "--eval", f"shift 8 px={tmp_path / 'b'}",
                          "--note", "one lever"], capture_output=True, text=True, timeout=300, check=True)
    readme = Path(out.stdout.strip())
    text = readme.read_text()
    assert readme == tmp_path / "report" / "README.md"
    assert "Two runs" in text and "one lever" in text
    assert "| PickCan | 25 (0–100, n=4) | 75 (0–100, n=4) |" in text
    assert "| shift 8 px | 4 | 2 | 0 | +50.0 | 0.500 |" in text  # 2 won, 0 lost: p = 2 * 0.5**2
    assert "| the reference | PickCan | grasp 50, lift 25 |" in text


def test_report_refuses_a_missing_eval_info_without_writing(tmp_path):
    (tmp_path / "empty").mkdir()
    for args, message in ((["--eval", f"x={tmp_path / 'empty'}"], "eval_info.json does not exist"),
                          (["--eval", str(tmp_path / "empty")], "takes NAME=DIR"),
                          ([], "nothing to report"), (["--run", f"r={tmp_path}"], "nothing to report")):
        out = subprocess.run([sys.executable, SCRIPT, "--out", str(tmp_path / "report"), *args],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr and out.stderr.count("\n") == 1
        assert not (tmp_path / "report").exists()
