"""Presets: parameter counts (XL on the meta device) and one source of truth with configs/model/*.yaml."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from worldmodel.models import PRESETS, ModelConfig, build_model, count_parameters, get_config
from worldmodel.objectives import ObjectiveConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
XL_PARAMS = 677_337_031  # docs/model.md


def test_xl_counts_675m_without_allocating() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    n = count_parameters("XL")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert n == XL_PARAMS
    assert abs(n - 675e6) / 675e6 < 0.02
    assert grown < 500 * 1024  # 677M fp32 weights would add 2.7 GB to the peak


def test_preset_sizes() -> None:
    assert count_parameters("tiny") < 2e6
    assert 2e6 < count_parameters("demo") < 6e6
    counts = [count_parameters(p) for p in ("S", "B", "L", "XL")]
    assert counts == sorted(counts)
    assert sum(p.numel() for p in build_model("tiny").parameters()) == count_parameters("tiny")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_preset_equals_python_preset(name: str) -> None:
    values = OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / f"{name}.yaml"))
    assert ModelConfig.from_dict(values) == PRESETS[name]


@pytest.mark.parametrize(("name", "selfflow"), [("selfflow", True), ("fm", False)])
def test_yaml_objective_equals_python_defaults(name: str, selfflow: bool) -> None:
    values = OmegaConf.to_container(OmegaConf.load(CONFIGS / "objective" / f"{name}.yaml"))
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
