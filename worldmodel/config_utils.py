"""Helpers shared by the config dataclasses (model, objective, train, ...)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

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
