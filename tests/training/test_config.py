"""Train config validation, the LR schedule, and the CLI's one-line errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from tests.training.conftest import run_cli
from worldmodel.training import TrainConfig


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("steps", 0, ">= 1"), ("batch_size", -1, ">= 1"), ("lr", 0.0, "> 0"), ("beta2", 1.0, "[0, 1)"),
    ("schedule", "linear", "one of"), ("precision", "fp16", "one of"), ("strategy", "fsdp", "one of"),
    ("min_lr_ratio", 2.0, "[0, 1]"), ("progress_weight", -1.0, ">= 0"), ("progress_weight", float("nan"), ">= 0"),
])
def test_train_config_names_field_and_range(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"train\.{field}.*{re.escape(allowed)}"):
        TrainConfig(**{field: value})


def test_unknown_train_key_in_from_dict() -> None:
    with pytest.raises(ValueError, match="unknown train config keys.*'lrate'"):
        TrainConfig.from_dict({"lrate": 1.0})


def test_lr_schedule_warmup_constant_and_cosine() -> None:
    const = TrainConfig(steps=100, warmup_steps=9, schedule="constant")
    assert const.lr_factor(0) == pytest.approx(0.1) and const.lr_factor(8) == pytest.approx(0.9)
    assert const.lr_factor(9) == 1.0 and const.lr_factor(99) == 1.0
    cos = TrainConfig(steps=100, warmup_steps=0, schedule="cosine", min_lr_ratio=0.1)
    assert cos.lr_factor(0) == pytest.approx(1.0)
    assert cos.lr_factor(50) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cos.lr_factor(100) == pytest.approx(0.1)
    factors = [cos.lr_factor(s) for s in range(101)]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


@pytest.mark.parametrize("command", [["pretrain"], ["finetune", "rt1"]])
def test_unknown_key_is_an_error(command: list[str], capsys) -> None:
    assert run_cli(*command, "train.learning_rate=1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldmodel: error:") and "train.learning_rate" in err and len(err.splitlines()) == 1


def test_bad_train_value_is_one_line_error(common, capsys) -> None:
    assert run_cli("pretrain", *common, "train.schedule=linear") == 2
    err = capsys.readouterr().err.strip()
    assert "train.schedule" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("default_dir", [True, False])
def test_missing_rt1_dir_says_how_to_get_data(default_dir: bool, tmp_path, capsys) -> None:
    if default_dir and (Path.home() / "tensorflow_datasets" / "fractal20220817_data" / "0.1.0").exists():
        pytest.skip("the real RT-1 data is installed at the default location")
    data = [] if default_dir else [f"data.dir={tmp_path / 'tfds'}"]
    assert run_cli("finetune", "rt1", *data, f"run_dir={tmp_path / 'run'}") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "fractal20220817_data/0.1.0" in err and "gsutil" in err and "data=sim" in err
    assert not (tmp_path / "run").exists()


def test_missing_init_checkpoint_is_named(common, tmp_path, capsys) -> None:
    missing = tmp_path / "nope"
    assert run_cli("finetune", "rt1", *common, f"init={missing}", f"run_dir={tmp_path / 'run'}") == 2
    assert str(missing) in capsys.readouterr().err
