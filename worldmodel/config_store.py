"""The config dataclasses as hydra schemas: where every default of the ``worldmodel`` commands is written.

Each schema is stored in hydra's ConfigStore as ``<group>/base`` (policies: ``policy/base_<name>``, primary
configs: ``<config>_base``). A YAML file under ``configs/`` starts from its schema (``defaults: [base, _self_]``)
and states only what differs, so a default is written once, in code, and hydra checks every key and every
value's type (``train.steps=abc`` fails at composition, naming ``train.steps``). After composition
:func:`validate` builds each group's dataclass once, so that range checks (``train.lr=-1``) fail before any work
starts, also for ``--cfg``.

Schemas are registered per command (:func:`register`), because their modules import torch (and the data
schemas tensorflow); ``worldmodel --help`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class Schema:
    """One dataclass registered as a hydra config.

    Attributes:
        group: config group (``""`` for a primary config's own keys).
        name: name in the ConfigStore.
        target: ``module:Class`` of the dataclass (imported on registration).
        extra: keys added to the schema (a policy's ``name``).
        drop: fields of the dataclass left out of the schema (set from another group).
        package: where the group's node sits in the composed config (validated there); None: not validated.
    """

    group: str
    name: str
    target: str
    extra: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    package: str | None = None


SCHEMAS: dict[str, Schema] = {s.group + "/" + s.name: s for s in (
    Schema("model", "base", "worldmodel.models.config:ModelConfig", package="model"),
    Schema("objective", "base", "worldmodel.objectives.config:ObjectiveConfig"),  # verb_probs may add `video`
    Schema("data", "base", "worldmodel.data.config:DataConfig", package="data"),
    Schema("train", "base", "worldmodel.training.config:TrainConfig", package="train"),
    Schema("logger", "base", "worldmodel.training.monitor:LoggerConfig", package="logger"),
    Schema("planner", "base", "worldmodel.planner.config:PlannerConfig", package="planner"),
    Schema("eval", "base", "worldmodel.evaluation.config:EvalConfig", package="eval"),
    Schema("policy", "base_scripted", "policies.scripted.configuration_scripted:ScriptedConfig",
           extra={"name": "scripted"}),
    Schema("policy", "base_dit", "policies.dit.configuration_dit:DiTPolicyConfig", extra={"name": "dit"}),
    Schema("policy", "base_planner", "policies.planner.configuration_planner:PlannerPolicyConfig",
           extra={"name": "planner"}, drop=("planner",)),  # the search is the top-level `planner` group
    Schema("", "data_sim_base", "worldmodel.data.config:SimDataConfig", package=""),
)}

# The schemas each primary config composes from.
COMMAND_SCHEMAS: dict[str, tuple[str, ...]] = {
    "eval_sim": ("eval/base", "planner/base", "policy/base_scripted", "policy/base_dit", "policy/base_planner"),
    "data_sim": ("/data_sim_base",),
    "pretrain": ("model/base", "objective/base", "data/base", "train/base", "logger/base"),
    "finetune_rt1": ("model/base", "objective/base", "data/base", "train/base", "logger/base"),
}


def _load(target: str) -> type:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _writable(node: DictConfig) -> None:
    # A frozen dataclass gives a read-only node; hydra must be able to merge presets and overrides into it.
    OmegaConf.set_readonly(node, None)
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _writable(child)


def schema_node(schema: Schema) -> DictConfig:
    """The typed (structured) node of a schema: the dataclass's fields, types and defaults."""
    node = OmegaConf.structured(_load(schema.target))
    _writable(node)
    if schema.extra or schema.drop:
        OmegaConf.set_struct(node, False)
        for key in schema.drop:
            del node[key]
        for key, value in schema.extra.items():
            node[key] = value
        OmegaConf.set_struct(node, True)
    return node


def register(config: str) -> None:
    """Store the schemas the primary config ``config`` uses in hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for key in COMMAND_SCHEMAS.get(config, ()):
        schema = SCHEMAS[key]
        store.store(group=schema.group or None, name=schema.name, node=schema_node(schema))


def validate(config: str, cfg: DictConfig) -> None:
    """Build the dataclass of every group ``config`` composed, so that its ``__post_init__`` range checks run.

    Raises:
        ValueError: from the first dataclass that rejects its values (the message names the field).
    """
    for key in COMMAND_SCHEMAS.get(config, ()):
        schema = SCHEMAS[key]
        if schema.package is None:
            continue
        node = cfg if schema.package == "" else cfg.get(schema.package)
        if node is None:
            continue
        values = OmegaConf.to_container(node, resolve=True)
        cls = _load(schema.target)
        names = set(cls.__dataclass_fields__)
        cls(**{k: v for k, v in values.items() if k in names})


def config_error(exc: BaseException) -> str:
    """One line for a composition error: the offending key (``full_key``) and omegaconf's first line."""
    seen: BaseException | None = exc
    while seen is not None:
        key = getattr(seen, "full_key", None)
        if key:
            return f"{key}: {str(seen).splitlines()[0]}"
        seen = seen.__cause__ or seen.__context__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
