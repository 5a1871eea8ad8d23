"""Helpers shared by the config dataclasses (model, objective, train, ...) and the hydra front end.

The config dataclasses are the only place a default is written (see ``docs/architecture.md``, "Configuration");
:mod:`worldmodel.config_store` registers them as hydra schemas and the YAML files under ``configs/`` hold
presets and overrides only.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from worldmodel.errors import UserError

T = TypeVar("T")


def from_mapping(cls: type[T], values: dict[str, Any], group: str) -> T:
    """Build the dataclass ``cls`` from a plain mapping (e.g. an OmegaConf node converted to a dict).

    Args:
        cls: a dataclass whose ``__post_init__`` validates the values.
        values: field name → value.
        group: the config group name used in the error message (``"model"``, ``"train"``, ...).

    Raises:
        ValueError: naming every unknown key and the allowed ones.
    """
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {group} config keys {sorted(unknown)}; allowed: {sorted(known)}")
    return cls(**values)


def config_dir() -> Path:
    """Directory holding the hydra configs: ``$WORLDMODEL_CONFIG_DIR``, else ``configs/`` beside the package.

    In the repository that is the top-level ``configs/``; an installed wheel ships the same folder as the
    top-level package ``configs`` next to ``worldmodel`` in site-packages, so one rule finds both.

    Raises:
        UserError: the directory does not exist.
    """
    env = os.environ.get("WORLDMODEL_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not path.is_dir():
        raise UserError(f"config directory {path} not found; set WORLDMODEL_CONFIG_DIR to the repo's configs/")
    return path


def load_preset(group: str, name: str) -> dict[str, Any]:
    """The values a preset file ``configs/<group>/<name>.yaml`` sets, with the files its ``defaults`` list names
    in the same group merged first (``base``, the schema, is left out: the dataclass supplies those values).

    Raises:
        ValueError: no such preset (naming the ones there are).
    """
    from omegaconf import OmegaConf

    path = config_dir() / group / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"{group} preset must be one of {preset_names(group)}, got {name!r}")
    own = OmegaConf.load(path)
    merged = OmegaConf.create()
    for entry in own.pop("defaults", []):
        parent = str(entry).split("@")[0]
        if parent not in ("base", "_self_"):
            merged = OmegaConf.merge(merged, load_preset(group, parent))
    return OmegaConf.to_container(OmegaConf.merge(merged, own), resolve=False)


def preset_names(group: str) -> list[str]:
    """Names of the preset files of a config group (not its sub-folders), sorted."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
