"""One source of defaults: YAML presets state only what differs from what they inherit, and every composed group
is exactly its dataclass's defaults plus the preset's own lines."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest
from omegaconf import OmegaConf

from worldmodel import config_store
from worldmodel.cli import compose
from worldmodel.config_utils import config_dir, load_preset

# group -> the schema its presets start from
GROUPS = {"model": "model/base", "objective": "objective/base", "data": "data/base", "train": "train/base",
          "logger": "logger/base", "planner": "planner/base"}


def _defaults(schema_key: str) -> dict:
    schema = config_store.SCHEMAS[schema_key]
    return OmegaConf.to_container(config_store.schema_node(schema), resolve=False)


def _presets() -> list[tuple[str, str]]:
    return [(group, path.stem) for group in GROUPS for path in sorted((config_dir() / group).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "name"), _presets())
def test_preset_states_only_differences(group: str, name: str) -> None:
    own = OmegaConf.to_container(OmegaConf.load(config_dir() / group / f"{name}.yaml"), resolve=False)
    parents = [str(e).split("@")[0] for e in own.pop("defaults", [])]
    assert parents and parents[0] != "_self_", f"{group}/{name}.yaml must start from its schema or a preset"
    inherited = _defaults(GROUPS[group])
    for parent in parents:
        if parent not in ("base", "_self_"):  # another preset of the group (itself starting from base)
            inherited.update(load_preset(group, parent))
    restated = {k: v for k, v in own.items() if k in inherited and inherited[k] == v}
    assert not restated, f"{group}/{name}.yaml restates inherited values {restated}"


@pytest.mark.parametrize(("config", "group", "cls_key"), [
    ("finetune_rt1", "train", "train/base"), ("pretrain", "model", "model/base"),
    ("eval_sim", "planner", "planner/base"), ("eval_sim", "eval", "eval/base"),
])
def test_composed_defaults_come_from_the_dataclass(config: str, group: str, cls_key: str) -> None:
    cls = config_store._load(config_store.SCHEMAS[cls_key].target)
    cfg = compose(config, [])
    values = OmegaConf.to_container(cfg[group], resolve=True)
    assert set(values) == {f.name for f in fields(cls)}
    preset = {} if group in ("eval", "planner") else \
        load_preset(group, {"train": "default", "model": "demo"}[group])
    expected = {**asdict(cls()), **preset}
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in expected.items()}
    assert values == expected


def test_one_task_list() -> None:
    from envs.tasks import TASK_CLASSES

    assert list(compose("eval_sim", []).eval.tasks) == list(TASK_CLASSES)
    assert list(compose("data_sim", []).tasks) == list(TASK_CLASSES)


def test_planner_is_its_own_group() -> None:
    cfg = compose("eval_sim", ["policy=planner", "planner=cem", "planner.num_candidates=32"])
    assert cfg.planner.method == "cem" and cfg.planner.num_candidates == 32
    assert "method" not in cfg.policy and "planner" not in cfg.policy
