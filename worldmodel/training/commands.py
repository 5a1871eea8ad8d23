"""``worldmodel pretrain`` and ``worldmodel finetune rt1``: composed config → :class:`Trainer`.

    worldmodel pretrain data=sim data.dir=outputs/sim_data model=demo train=demo
    worldmodel finetune rt1 init=outputs/pretrain data.dir=~/tensorflow_datasets
    torchrun --nproc-per-node 8 -m worldmodel.cli finetune rt1 model=XL train=gpu train.strategy=fsdp2 init=...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from worldmodel.data.pipeline import dataset_path
from worldmodel.data.reader import resolve_dataset_dir
from worldmodel.data.schema import DATASET_NAME
from worldmodel.errors import UserError
from worldmodel.training.checkpoint import resolve_checkpoint
from worldmodel.training.trainer import NonFiniteLossError, Trainer

GET_RT1 = ("get the real data (~111 GiB) with `gsutil -m cp -r gs://gresearch/robotics/fractal20220817_data "
           "~/tensorflow_datasets/` (or point data.dir at your copy), or train on simulated episodes in the same "
           "schema: `worldmodel data sim out=outputs/sim_data` then `worldmodel {cmd} data=sim "
           "data.dir=outputs/sim_data`")


def check_data(cfg: DictConfig, command: str) -> Path | list[Path]:
    """The dataset directory of ``cfg.data`` (a list when ``data.dir`` names several), or a :class:`UserError`
    saying how to get the data that is missing."""
    data = cfg.data
    paths = dataset_path(data)
    found = []
    for path in paths if isinstance(paths, list) else [paths]:
        try:
            found.append(resolve_dataset_dir(path, data.get("name"), data.get("version")))
        except FileNotFoundError as exc:
            if data.get("name") == DATASET_NAME:
                where = path / DATASET_NAME / str(data.get("version"))
                raise UserError(f"RT-1 dataset not found at {where} (data.dir={data.get('dir')}): "
                                + GET_RT1.format(cmd=command)) from exc
            raise UserError(f"{exc}; make simulated data with `worldmodel data sim out=DIR` and pass data.dir=DIR") \
                from exc
    return found if isinstance(paths, list) else found[0]


def _run(cfg: DictConfig, mode: str, init: str | None) -> int:
    try:
        result = Trainer(cfg, mode, init).run()
    except NonFiniteLossError as exc:
        print(f"worldmodel: error: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    if result.signal is not None:
        return 128 + int(result.signal)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: step {result.step}; checkpoint {result.checkpoint}", flush=True)
    return 0


def pretrain(cfg: DictConfig) -> int:
    """``worldmodel pretrain``: the ``video`` verb on the frames of an RLDS dataset (Self-Flow by default)."""
    check_data(cfg, "pretrain")
    return _run(cfg, "pretrain", None)


def finetune_rt1(cfg: DictConfig) -> int:
    """``worldmodel finetune rt1``: the verb mix on an RLDS dataset with actions, from ``init=`` a checkpoint."""
    init = cfg.get("init")
    if init:
        resolve_checkpoint(str(init))  # a missing/incomplete init path fails before the data is opened
    check_data(cfg, "finetune rt1")
    return _run(cfg, "finetune", str(init) if init else None)
