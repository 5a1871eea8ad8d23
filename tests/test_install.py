"""A non-editable install finds its configs: ``pip install --target`` into a temp dir, run from elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_package_composes_its_configs(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the working tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("worldmodel", "policies", "envs", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    assert (target / "configs" / "model" / "geometry" / "rt1.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy first; the venv's other packages (torch, hydra, ...) after it.
    env = {k: v for k, v in os.environ.items() if k != "WORLDMODEL_CONFIG_DIR"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]))
    where = subprocess.run([sys.executable, "-c", "import worldmodel; print(worldmodel.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(target))
    script = target / "bin" / "worldmodel"
    for args, expect in ((["eval", "sim"], "tasks:"), (["finetune", "rt1"], "name: fractal20220817_data")):
        out = subprocess.run([sys.executable, str(script), *args, "--cfg"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert expect in out.stdout
