"""The ``worldmodel`` console command.

Every sub-command is a hydra config under ``configs/`` plus a function taking the composed config::

    worldmodel eval sim policy=scripted eval.tasks=[PickCan] eval.episodes=5
    worldmodel <command words...> [hydra overrides...]

Unknown keys, values of the wrong type (``train.steps=abc``), out-of-range values, missing or unwritable paths
and corrupt inputs end the command with one line on stderr and exit code 2, whichever way it is started:
``worldmodel ...``, ``python -m worldmodel.cli ...`` or ``torchrun ... -m worldmodel.cli ...``. The defaults of
every key are the config dataclasses' (:mod:`worldmodel.config_store`); ``configs/`` holds presets and overrides.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from worldmodel.config_utils import config_dir
from worldmodel.errors import UserError

__all__ = ["COMMANDS", "Command", "UserError", "compose", "config_dir", "main"]


@dataclass(frozen=True)
class Command:
    """One sub-command: the words that select it, its primary config and the function that runs it."""

    words: tuple[str, ...]
    config: str
    target: str  # "module:function", imported lazily so that `--help` stays fast
    help: str


# Only commands that work are registered here; `worldmodel --help` lists exactly these.
COMMANDS: tuple[Command, ...] = (
    Command(("eval", "sim"), "eval_sim", "worldmodel.evaluation.sim:run",
            "closed-loop evaluation of a policy on the simulated tasks"),
    Command(("data", "sim"), "data_sim", "worldmodel.data.sim:run",
            "roll out experts in the sim tasks and write an RLDS dataset (RT-1 schema)"),
    Command(("pretrain",), "pretrain", "worldmodel.training.commands:pretrain",
            "video pretraining (Self-Flow by default) on the frames of an RLDS dataset"),
    Command(("finetune", "rt1"), "finetune_rt1", "worldmodel.training.commands:finetune_rt1",
            "fine-tune a checkpoint on RT-1 (RLDS) with the policy/dynamics/inverse/video verb mix"),
)


def compose(config: str, overrides: list[str]) -> DictConfig:
    """Compose a primary config with hydra overrides and validate it.

    Raises:
        UserError: an unknown key or a value of the wrong type (naming the key).
        ValueError: a value out of its range (from the group's config dataclass, naming the field).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from worldmodel import config_store

    config_store.register(config)
    overrides = [_bracket_task_list(o) for o in overrides]
    try:
        with initialize_config_dir(version_base=None, config_dir=str(config_dir())):
            cfg = hydra_compose(config_name=config, overrides=overrides)
        OmegaConf.set_struct(cfg, True)
        config_store.validate(config, cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(f"bad config: {config_store.config_error(exc)}") from exc
    return cfg


TASK_LIST_KEYS = ("eval.tasks", "tasks")  # list-typed task selections (eval sim, data sim)


def _bracket_task_list(override: str) -> str:
    """``eval.tasks=CloseDrawer`` (or ``='PickCan,CloseDrawer'``) means a list of those tasks, not an error: the
    bare form is what users type, and the typed config would reject a string for a list."""
    key, sep, value = override.partition("=")
    if not sep or key not in TASK_LIST_KEYS or value.startswith("[") or value in ("", "null"):
        return override
    names = [v.strip() for v in value.strip("'\"").split(",") if v.strip()]
    return f"{key}=[{','.join(names)}]"


def _usage() -> str:
    lines = ["usage: worldmodel <command> [hydra overrides...]", "", "commands:"]
    for cmd in COMMANDS:
        lines.append(f"  {' '.join(cmd.words):<16} {cmd.help}")
    lines += ["", "Each command takes hydra overrides, e.g. `worldmodel eval sim eval.episodes=5`;",
              "`worldmodel <command> --cfg` prints the resolved config."]
    return "\n".join(lines)


def _match(argv: list[str]) -> tuple[Command, list[str]]:
    for cmd in sorted(COMMANDS, key=lambda c: -len(c.words)):
        n = len(cmd.words)
        if tuple(argv[:n]) == cmd.words:
            return cmd, argv[n:]
    raise UserError(f"unknown command {' '.join(argv[:2])!r}; run `worldmodel --help`")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    try:
        cmd, rest = _match(argv)
        if any(a in ("-h", "--help") for a in rest):
            print(f"worldmodel {' '.join(cmd.words)}: {cmd.help}\n\nconfig ({cmd.config}.yaml):\n")
            print(OmegaConf.to_yaml(compose(cmd.config, [])))
            return 0
        show_cfg = "--cfg" in rest
        rest = [a for a in rest if a != "--cfg"]
        cfg = compose(cmd.config, rest)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg))
            return 0
        module, func = cmd.target.split(":")
        result = getattr(importlib.import_module(module), func)(cfg)
        return int(result or 0)
    except UserError as exc:
        print(f"worldmodel: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        # Config dataclasses and loaders raise these with the offending field or path in the message.
        print(f"worldmodel: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a path the user chose: a bug or a system failure, keep the traceback
            raise
        # read-only or full output directories, a file where a directory is expected, ...
        print(f"worldmodel: error: cannot write or read {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("worldmodel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
