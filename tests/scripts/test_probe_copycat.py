"""The copycat check end to end on a few episodes: it holds out the last seeds of each task and reports every net."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_probe_copycat_reports_every_net_on_held_out_episodes():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "probe_copycat.py"), "--tasks", "PickCan",
                          "--episodes", "3", "--heldout", "1", "--steps", "2", "--batch", "4"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert re.search(r"held out \(1 episodes\)", out)
    rows = dict(re.findall(r"\| ([a-z +()]+?) \| [\d.]* ?\|? ?([\d.]+) \|", out))
    assert set(rows) == {"mean first action (no model)", "state only", "image only", "image + state"}
    assert all(float(v) > 0 for v in rows.values())
