"""Datasets that survive a crash and data checked before it is trusted: rows 3, 6, 10 and 11 of issue 12."""

from __future__ import annotations

import shutil
import signal
import time

import numpy as np
import pytest

from tests.reliability.conftest import (
    NAME,
    episodes,
    one_error_line,
    overrides,
    run_cli,
    set_value,
    start,
)
from worldmodel.data import open_rlds
from worldmodel.data.writer import dataset_dir, write_dataset


@pytest.fixture
def data_copy(data_root, tmp_path):
    """A private copy of the session dataset's root."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    return root


def _intact(root) -> None:
    """The old dataset is there, complete and readable, and nothing half-written sits in its place."""
    ds = open_rlds(root, NAME)
    assert ds.num_episodes == 4
    assert [ep["episode_index"] for ep in ds.episodes(decode_images=False)] == [0, 1, 2, 3]


def _failing(after: int):
    for i, ep in enumerate(episodes()):
        if i == after:
            raise RuntimeError("writer killed")
        yield ep


def test_row3_failed_overwrite_keeps_the_old_dataset(data_copy) -> None:
    """Row 3 (in-process): a write with overwrite=true that fails midway leaves the old dataset as it was."""
    with pytest.raises(RuntimeError, match="writer killed"):
        write_dataset(_failing(2), data_copy, NAME, overwrite=True, progress=False)
    _intact(data_copy)
    assert not list(data_copy.glob(".*staging*"))


def test_row3_interrupted_swap_is_undone(data_copy) -> None:
    """A kill between the swap's two renames (old set aside, new not in place) is undone by the next write."""
    target = dataset_dir(data_copy, NAME)
    target.rename(target.with_name(f".{target.name}.replaced-12345"))
    with pytest.raises(RuntimeError, match="writer killed"):
        write_dataset(_failing(1), data_copy, NAME, overwrite=True, progress=False)
    _intact(data_copy)


def test_row3_overwrite_swaps_in_the_new_dataset(data_copy) -> None:
    write_dataset(list(episodes())[:2], data_copy, NAME, overwrite=True, progress=False)
    assert open_rlds(data_copy, NAME).num_episodes == 2
    assert sorted(p.name for p in data_copy.iterdir()) == [NAME]  # no staging or replaced directories left
    assert sorted(p.name for p in (data_copy / NAME).iterdir()) == ["0.1.0"]


_DATA_SIM = "import sys; from worldmodel.cli import main; sys.exit(main(sys.argv[1:]))"


def test_row3_kill9_during_data_sim_keeps_the_old_dataset(data_copy, tmp_path) -> None:
    """Row 3: ``worldmodel data sim out=D overwrite=true`` killed with SIGKILL mid-run: D's dataset still reads."""
    log = tmp_path / "data_sim.log"
    proc = start(_DATA_SIM, ["data", "sim", f"out={data_copy}", f"name={NAME}", "overwrite=true", "episodes=200",
                             "tasks=[PickCan]", "max_steps=2", "image_size=[32,40]", "progress=false"], log)
    deadline = time.monotonic() + 120
    while not list(data_copy.glob(f".{NAME}-*.staging-*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"data sim never started writing ({proc.returncode}): {log.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the rollouts: 200 episodes take far longer
    assert proc.poll() is None, "data sim finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _intact(data_copy)


def _bad_dataset(tmp_path, override) -> object:
    root = tmp_path / "bad"
    write_dataset(episodes(override), root, NAME, num_shards=2, progress=False)
    return root


@pytest.mark.parametrize("command", ["finetune rt1", "pretrain"])
def test_row6_nan_language_names_the_episode(tmp_path, capsys, command) -> None:
    """Row 6: NaN in one episode's natural_language_embedding: one line naming episode and field, exit 2 (not
    a non-finite loss at step 1), whether the statistics pass (fine-tuning) or the clip loader meets it."""
    root = _bad_dataset(tmp_path, lambda i, ep: set_value(ep, "language", (5,), np.nan) if i == 1 else None)
    code, _, err = run_cli(capsys, *command.split(), *overrides(root, tmp_path / "run"))
    assert code == 2
    line = one_error_line(err)
    assert "episode 1" in line and "natural_language_embedding" in line and "non-finite" in line


def test_row10_absurd_action_is_an_error_before_statistics(tmp_path, capsys) -> None:
    """Row 10: one action value of 1e30: an error naming episode, step and key, before statistics exist."""
    root = _bad_dataset(tmp_path, lambda i, ep: set_value(ep, "actions", (3, 0), 1e30) if i == 2 else None)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(root, run))
    assert code == 2
    line = one_error_line(err)
    assert "episode 2" in line and "world_vector" in line and "step 3" in line and "1e+30" in line
    assert not (run / "action_stats.json").exists()


def _corrupt_first_record(shard) -> None:
    """Flip a byte inside the first record's payload: the header walk passes, the record's CRC does not."""
    data = bytearray(shard.read_bytes())
    length = int.from_bytes(data[:8], "little")
    data[12 + length // 2] ^= 0xFF
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("workers", [0, 1])
def test_row11_corrupt_payload_is_one_line_in_workers_too(data_copy, tmp_path, capsys, workers) -> None:
    """Row 11: a corrupt record read inside a DataLoader worker gives the same one line as in the main process."""
    shard = sorted(dataset_dir(data_copy, NAME).glob("*.tfrecord-00000-of-*"))[0]
    _corrupt_first_record(shard)
    code, _, err = run_cli(capsys, "pretrain", *overrides(data_copy, tmp_path / "run"),
                           f"data.num_workers={workers}")
    assert code == 2
    line = one_error_line(err)
    assert str(dataset_dir(data_copy, NAME)) in line and "episode 0" in line and "DataLoader" not in line


def test_language_length_must_match_the_model(data_root, tmp_path, capsys) -> None:
    """The clip loader's embeddings (512 per step) against a model built for another length: one line."""
    code, _, err = run_cli(capsys, "pretrain", *overrides(data_root, tmp_path / "run"), "model.lang_dim=384")
    assert code == 2
    line = one_error_line(err)
    assert "natural_language_embedding has 512" in line and "model.lang_dim=384" in line
