"""Presets: parameter counts (XL on the meta device); configs/model/*.yaml read by hydra and by PRESETS agree."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from worldmodel.cli import compose
from worldmodel.models import PRESETS, ModelConfig, build_model, count_parameters, get_config
from worldmodel.objectives import ObjectiveConfig

XL_PARAMS = 677_337_031  # docs/model.md


def test_xl_counts_675m_without_allocating() -> None:
    # ru_maxrss is the peak of the whole process: measured in a fresh one, so an earlier, bigger test in this
    # process cannot hide an allocation (the assert fails if count_parameters builds XL for real).
    code = ("import resource, sys; from worldmodel.models import count_parameters; "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; n = count_parameters('XL'); "
            "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, grown_kib = (int(v) for v in out.stdout.split())
    assert n == XL_PARAMS
    assert abs(n - 675e6) / 675e6 < 0.02
    assert grown_kib < 500 * 1024  # 677M fp32 weights would add 2.7 GB to the peak


def test_preset_sizes() -> None:
    assert count_parameters("tiny") < 2e6
    assert 2e6 < count_parameters("demo") < 6e6
    counts = [count_parameters(p) for p in ("S", "B", "L", "XL")]
    assert counts == sorted(counts)
    assert sum(p.numel() for p in build_model("tiny").parameters()) == count_parameters("tiny")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_hydra_preset_equals_python_preset(name: str) -> None:
    # The same file read two ways: composed by hydra over the ModelConfig schema, and by PRESETS.
    cfg = compose("pretrain", [f"model={name}"])
    assert ModelConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True)) == PRESETS[name]
    assert PRESETS[name].name == name


def test_objective_presets() -> None:
    for name, selfflow in (("selfflow", True), ("fm", False)):
        values = OmegaConf.to_container(compose("pretrain", [f"objective={name}"]).objective, resolve=True)
        assert ObjectiveConfig.from_dict(values) == ObjectiveConfig(selfflow=selfflow)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", 0),
        ("heads", 5),
        ("patch", 7),
        ("prediction", "eps"),
        ("mlp_ratio", 0.0),
        ("context_frames", -1),
    ],
)
def test_model_config_validates(field: str, value: object) -> None:
    name = "hidden" if field == "heads" else field
    with pytest.raises(ValueError, match=name if field != "patch" else "patch"):
        get_config("tiny", **{field: value})


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValueError, match="widht"):
        get_config("tiny", widht=3)
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"hidden": 64, "colour": 1})
    with pytest.raises(ValueError, match="preset"):
        build_model("XXL")
