"""Checkpoints you can trust: rows 1, 2, 4, 5, 12 and 13 of issue 12, and kill -9 while a checkpoint is written."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
import torch

from tests.reliability.conftest import (
    STEPS,
    ckpt,
    losses,
    one_error_line,
    overrides,
    run_cli,
    snapshot,
    start,
)
from worldmodel.integrity import MANIFEST, write_manifest
from worldmodel.training import load_checkpoint
from worldmodel.training.checkpoint import (
    export_weights,
    latest_checkpoint,
    prune_checkpoints,
    verify_checkpoint,
)


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))


def _resumed_exactly(run, base_run) -> None:
    """The run ended at the last step with a checkpoint that verifies and the uninterrupted run's losses."""
    latest = latest_checkpoint(run)
    assert latest is not None and latest.name == f"step_{STEPS:08d}"
    verify_checkpoint(latest)
    assert losses(run) == losses(base_run)


@pytest.mark.parametrize(("name", "damage"), [("model.safetensors", _truncate), ("optimizer.pt", _truncate),
                                             ("ema.safetensors", _flip)])
def test_row1_damaged_latest_checkpoint_falls_back(data_root, base_run, run_copy, capsys, name, damage) -> None:
    """Row 1: a truncated (or bit-flipped) file in the latest checkpoint: resume=auto skips it, saying which
    file, and resumes the previous complete checkpoint exactly."""
    damage(ckpt(run_copy, 4) / name)
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, run_copy), "resume=auto")
    assert code == 0, err[-2000:]
    assert "resume=auto: skipping step_00000004" in err and name in err
    assert "resuming from step_00000002" in err
    _resumed_exactly(run_copy, base_run)


@pytest.mark.parametrize("state", ["partial", "empty"])
def test_row2_no_usable_checkpoint_says_it_starts_from_scratch(data_root, base_run, run_copy, capsys,
                                                               state) -> None:
    """Row 2: the only checkpoint is partial (or an empty step_N/): resume=auto says so, prunes it and starts
    from step 0 (reproducing the uninterrupted run)."""
    root = run_copy / "checkpoints"
    for p in root.iterdir():
        if p.name != "step_00000004":
            shutil.rmtree(p)
    only = ckpt(run_copy, 4)
    if state == "partial":
        (only / "trainer_state.pt").unlink()
    else:
        shutil.rmtree(only)
        only.mkdir()
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, run_copy), "resume=auto")
    assert code == 0, err[-2000:]
    assert "skipping step_00000004" in err and "starting from step 0" in err
    _resumed_exactly(run_copy, base_run)


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: what a crafted optimizer.pt could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("name", ["optimizer.pt", "trainer_state.pt"])
def test_row4_pickle_payload_never_runs(data_root, run_copy, capsys, monkeypatch, tmp_path, name) -> None:
    """Row 4: a crafted pickle (with a matching manifest) and TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: the payload
    does not run; one line names the file, exit 2."""
    marker = tmp_path / "payload_ran"
    target = ckpt(run_copy, 4)
    torch.save({"state": _Payload(str(marker))}, target / name)
    write_manifest(target, 4)  # the attacker also rewrote the manifest: only weights_only=True stands in the way
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, run_copy), "resume=auto")
    assert code == 2
    assert name in one_error_line(err) and "weights_only" in err
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["exported", "pickles_deleted"])
def test_row5_weights_only_checkpoint_loads_for_eval_and_init(data_root, base_run, tmp_path, capsys,
                                                              kind) -> None:
    """Row 5: a checkpoint without optimizer.pt / trainer_state.pt loads for inference and for init=."""
    if kind == "exported":
        shared = export_weights(ckpt(base_run, 4), tmp_path / "shared")
        assert not list(shared.glob("*.pt")) and (shared / MANIFEST).is_file()
    else:
        shared = tmp_path / "step_00000004"
        shutil.copytree(ckpt(base_run, 4), shared)
        for name in ("optimizer.pt", "trainer_state.pt"):
            (shared / name).unlink()
    loaded = load_checkpoint(shared)
    assert loaded.step == 4 and loaded.action_stats is not None
    if kind == "exported":
        code, out, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, tmp_path / "ft"),
                                 "train.steps=1", f"init={shared}")
        assert code == 0, err[-2000:]
        assert f"from {shared}" in out


def test_legacy_checkpoints_without_manifest_still_load_and_resume(data_root, run_copy, capsys) -> None:
    """Checkpoints written before manifests: loadable for inference; for resume, verified by loading every file
    (a truncated legacy file is still caught and skipped)."""
    for step in (2, 4):
        (ckpt(run_copy, step) / MANIFEST).unlink()
    assert load_checkpoint(run_copy).step == 4
    verify_checkpoint(ckpt(run_copy, 4))
    _truncate(ckpt(run_copy, 4) / "optimizer.pt")
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, run_copy), "resume=auto")
    assert code == 0, err[-2000:]
    assert "skipping step_00000004" in err and "optimizer.pt" in err and "resuming from step_00000002" in err


def test_checkpoint_replaced_by_a_killed_writer_is_put_back(run_copy) -> None:
    """Re-saving a step sets the old directory aside before renaming the new one in; a kill between the two
    renames must not lose the step: the next run puts it back (and removes the half-written successor)."""
    root = run_copy / "checkpoints"
    ckpt(run_copy, 4).rename(root / ".tmp-old-step_00000004-999")
    (root / ".tmp-step_00000004-999").mkdir()
    prune_checkpoints(run_copy)
    assert [p.name for p in sorted(root.iterdir())] == ["step_00000002", "step_00000004"]
    verify_checkpoint(ckpt(run_copy, 4))


@pytest.mark.parametrize("change", ["model.depth=2", "train.progress_weight=0"])
def test_row12_rejected_resume_changes_nothing_on_disk(data_root, run_copy, capsys, change) -> None:
    """Row 12: a resume rejected for a different model (or head) exits 2 and leaves every file as it was,
    even the damaged checkpoint it would have skipped and pruned."""
    _truncate(ckpt(run_copy, 4) / "model.safetensors")
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, run_copy), "resume=auto", change)
    assert code == 2
    one_error_line(err)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "garbage_legacy"])
def test_row13_corrupt_weights_in_eval_name_the_file(base_run, tmp_path, capsys, damage) -> None:
    """Row 13: a truncated or garbage ema.safetensors (with or without a manifest) in ``eval sim``: one line
    naming the file, exit 2, and no empty eval.out left (row 16)."""
    target = tmp_path / "step_00000004"
    shutil.copytree(ckpt(base_run, 4), target)
    ema = target / "ema.safetensors"
    if damage == "truncated":
        _truncate(ema)
    else:
        ema.write_bytes(os.urandom(ema.stat().st_size))
    if damage == "garbage_legacy":
        (target / MANIFEST).unlink()
    out = tmp_path / "eval"
    code, _, err = run_cli(capsys, "eval", "sim", "policy=dit", f"checkpoint={target}", "eval.tasks=[PickCan]",
                           "eval.episodes=1", "eval.image_size=[32,40]", f"eval.out={out}")
    assert code == 2
    assert str(ema) in one_error_line(err)
    assert not out.exists()


# Run the CLI with checkpoint writing stopped (then killed) at one point of the step-4 checkpoint.
_KILL_AT = r"""
import os, sys, time
from pathlib import Path
import worldmodel.training.checkpoint as C

POINT, MARK = os.environ["WM_KILL_POINT"], Path(os.environ["WM_KILL_MARK"])
write_file, write_manifest = C._write_file, C.write_manifest

def stop():
    MARK.write_text("stopped")
    time.sleep(600)

def patched_write_file(directory, name, write):
    writing_4 = "step_00000004" in directory.name
    if writing_4 and POINT == "mid_file" and name == "optimizer.pt":
        write(directory / name)
        data = (directory / name).read_bytes()
        (directory / name).write_bytes(data[: len(data) // 2])
        stop()
    write_file(directory, name, write)

def patched_write_manifest(directory, step):
    manifest = write_manifest(directory, step)
    if step == 4 and POINT == "before_rename":
        stop()
    return manifest

C._write_file, C.write_manifest = patched_write_file, patched_write_manifest
from worldmodel.cli import main
sys.exit(main(sys.argv[1:]))
"""


KILL_POINTS = ("mid_file", "before_rename")  # half a file written; all written, not renamed


@pytest.fixture(scope="module")
def killed_runs(data_root, tmp_path_factory) -> dict[str, object]:
    """One run per kill point, killed with SIGKILL while writing its step-4 checkpoint. The writers start
    together (their start-up, mostly imports, overlaps) and each is killed as soon as it stops at its point."""
    root = tmp_path_factory.mktemp("killed")
    procs = {}
    for point in KILL_POINTS:
        run, mark, log = root / point, root / f"{point}.stopped", root / f"{point}.log"
        procs[point] = (start(_KILL_AT, ["finetune", "rt1", *overrides(data_root, run)], log,
                              WM_KILL_POINT=point, WM_KILL_MARK=str(mark)), run, mark, log)
    deadline, results = time.monotonic() + 240, {}
    while len(results) < len(procs):
        for point, (proc, run, mark, log) in procs.items():
            if point in results:
                continue
            if mark.exists():
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                results[point] = run
            elif proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                results[point] = f"writer never reached {point} ({proc.returncode}): {log.read_text()[-2000:]}"
        time.sleep(0.05)
    return results


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill9_while_writing_a_checkpoint(data_root, base_run, killed_runs, capsys, point) -> None:
    """kill -9 inside checkpoint writing (half-way through a file; every file and the manifest written but the
    directory not renamed): the half-written checkpoint is never used; resume=auto continues from step 2,
    removes the leftovers and reproduces the uninterrupted run."""
    run = killed_runs[point]
    if isinstance(run, str):
        pytest.fail(run)
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_")] == ["step_00000002"]
    assert [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]  # the half-written one
    code, _, err = run_cli(capsys, "finetune", "rt1", *overrides(data_root, run), "resume=auto")
    assert code == 0, err[-2000:]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    _resumed_exactly(run, base_run)
