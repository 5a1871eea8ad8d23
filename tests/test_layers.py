"""Imports go downwards only (docs/architecture.md, "Layers"): inference never loads training, the planner never
loads its world-model adapter, and ``envs/`` never loads ``worldmodel``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
INFERENCE = ("worldmodel.world_model", "worldmodel.planner", "worldmodel.evaluation", "worldmodel.evaluation.sim",
             "worldmodel.evaluation.imagination", "worldmodel.io", "policies", "policies.dit", "policies.planner",
             "policies.scripted")


def _loaded_after(modules: tuple[str, ...], prefix: str) -> list[str]:
    code = (f"import importlib, sys\nfor m in {list(modules)!r}: importlib.import_module(m)\n"
            f"print('\\n'.join(sorted(m for m in sys.modules if m == {prefix!r} or m.startswith({prefix!r} + '.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.split()


def test_inference_does_not_import_training() -> None:
    assert _loaded_after(INFERENCE, "worldmodel.training") == []


def test_envs_do_not_import_worldmodel() -> None:
    assert _loaded_after(("envs", "envs.tabletop", "envs.tasks", "envs.language"), "worldmodel") == []
    for path in (ROOT / "envs").glob("*.py"):  # also imports inside functions, which the above cannot see
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "worldmodel" for n in names), f"{path.name} imports {names}"


def test_planner_core_does_not_import_its_adapter() -> None:
    tree = ast.parse((ROOT / "worldmodel" / "planner" / "planner.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any("scoring" in (m or "") or "world_model" in (m or "") for m in imported)


def test_planner_takes_callables_only() -> None:
    from worldmodel.planner import PlanFns, Planner, make_planner
    from worldmodel.world_model import WorldModel

    wm = WorldModel.random("tiny", seed=0)
    with pytest.raises(TypeError, match="make_planner"):
        Planner(wm)
    assert isinstance(make_planner(wm).fns, PlanFns)


def test_action_bounds_agree_with_the_env() -> None:
    from envs.tabletop import ACTION_HIGH, ACTION_LOW
    from worldmodel import io

    np.testing.assert_array_equal(io.ACTION_LOW, ACTION_LOW)
    np.testing.assert_array_equal(io.ACTION_HIGH, ACTION_HIGH)
