"""Inputs validated at the boundary and user mistakes as one line: rows 7, 8, 9, 14, 15 and 16 of issue 12."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reliability.conftest import one_error_line, overrides, run_cli
from worldmodel import WorldModel
from worldmodel.cli import compose
from worldmodel.evaluation.sim import EvalConfig
from worldmodel.planner import Planner, PlannerConfig, make_planner

FRAMES = np.zeros((1, 32, 40, 3), np.uint8)
LANG = np.full(512, 0.04, np.float32)


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    return WorldModel.random("tiny", seed=0)


def _planner(wm: WorldModel, **kwargs) -> Planner:
    return make_planner(wm, PlannerConfig(num_candidates=2, horizon=2, sampling_steps=1, execute_steps=1, **kwargs))


def _nan_language() -> np.ndarray:
    lang = LANG.copy()
    lang[7] = np.nan
    return lang


BAD_PLAN_INPUTS = {  # row: (frames, language, what the message must name)
    "row7-nan-language": (FRAMES, _nan_language(), "non-finite"),
    "row8-384-language": (FRAMES, np.zeros(384, np.float32), "(512,)"),
    "row8-513-language": (FRAMES, np.zeros(513, np.float32), "(512,)"),
    "row8-scalar-language": (FRAMES, 0.5, "(512,)"),
    "row8-bytes-array-language": (FRAMES, np.array([b"x", b"y"]), "language"),
    "row8-two-languages": (FRAMES, np.zeros((2, 512), np.float32), "language"),
    "row8-zero-frames": (FRAMES[:0], LANG, "K >= 1"),
    "row8-float-frames": (FRAMES.astype(np.float32), LANG, "uint8"),
    "row8-rgba-frames": (np.zeros((1, 32, 40, 4), np.uint8), LANG, "(K, H, W, 3)"),
    "row8-one-frame-no-K": (FRAMES[0], LANG, "(K, H, W, 3)"),
}


@pytest.mark.parametrize("case", list(BAD_PLAN_INPUTS))
def test_rows7_8_planner_rejects_bad_inputs_naming_the_field(world_model, case) -> None:
    """Rows 7-8: NaN or wrongly sized language, no frames, wrong dtype or channels: one ValueError naming the
    field, never NaN actions or a raw torch error."""
    frames, language, words = BAD_PLAN_INPUTS[case]
    field = "language" if "language" in case else "frames"
    with pytest.raises(ValueError) as info:
        _planner(world_model).plan(frames, language)
    message = str(info.value)
    assert message.startswith(field) and words in message and "\n" not in message


@pytest.mark.parametrize("verb", ["propose", "imagine", "progress", "features"])
def test_row7_world_model_verbs_reject_nan_language(world_model, verb) -> None:
    calls = {"propose": lambda lang: world_model.propose(FRAMES, lang, n=1, steps=1),
             "imagine": lambda lang: world_model.imagine(FRAMES, lang, np.zeros((2, 7), np.float32), steps=1),
             "progress": lambda lang: world_model.progress(FRAMES, lang),
             "features": lambda lang: world_model.features(FRAMES, lang)}
    with pytest.raises(ValueError, match="^language .*non-finite"):
        calls[verb](_nan_language())


def test_row9_goal_with_zero_weight_is_an_error(world_model) -> None:
    """Row 9: a goal frame with the default goal_weight=0 is an error (it used to be ignored silently)."""
    with pytest.raises(ValueError, match="goal_weight"):
        _planner(world_model).plan(FRAMES, LANG, goal_frame=FRAMES[0])
    with pytest.raises(ValueError, match="^goal_frame must have shape"):
        _planner(world_model, goal_weight=1.0).plan(FRAMES, LANG, goal_frame=FRAMES)
    result = _planner(world_model, goal_weight=1.0).plan(FRAMES, LANG, goal_frame=FRAMES[0])
    assert np.isfinite(result.actions).all()


def test_row15_negative_eval_seed_is_one_line(capsys) -> None:
    code, _, err = run_cli(capsys, "eval", "sim", "eval.seed=-5", "eval.episodes=1")
    assert code == 2 and "eval.seed" in one_error_line(err)


@pytest.mark.parametrize(("value", "tasks"), [("CloseDrawer", ["CloseDrawer"]),
                                              ("'PickCan,CloseDrawer'", ["PickCan", "CloseDrawer"])])
def test_row15_bare_task_name_means_one_task(value, tasks) -> None:
    """Row 15: ``eval.tasks=CloseDrawer`` (no brackets) is one task, not the letters C, l, o, ..."""
    cfg = compose("eval_sim", [f"eval.tasks={value}"])
    assert EvalConfig(tasks=cfg.eval.tasks).tasks == tasks
    from worldmodel.data.sim import _check_config

    assert _check_config(compose("data_sim", [f"tasks={value}"]))["tasks"] == tasks


@pytest.mark.parametrize("problem", ["missing", "not_given"])
def test_row16_failed_eval_leaves_no_output_dir(tmp_path, capsys, problem) -> None:
    """Row 16: an eval that fails before its first episode (missing checkpoint) leaves no empty eval.out."""
    out = tmp_path / "eval"
    checkpoint = [f"checkpoint={tmp_path / 'nowhere'}"] if problem == "missing" else []
    code, _, err = run_cli(capsys, "eval", "sim", "policy=dit", *checkpoint, "eval.tasks=[PickCan]",
                           "eval.episodes=1", "eval.image_size=[32,40]", f"eval.out={out}")
    assert code == 2 and "checkpoint" in one_error_line(err)
    assert not out.exists()


def _command(kind: str, target, data_root, tmp_path) -> list[str]:
    if kind == "run_dir":
        return ["finetune", "rt1", *overrides(data_root, target)]
    if kind == "eval.out":
        return ["eval", "sim", "policy=scripted", "eval.tasks=[PickCan]", "eval.episodes=1",
                "eval.image_size=[32,40]", f"eval.out={target}"]
    return ["data", "sim", f"out={target}", "episodes=1", "tasks=[PickCan]", "max_steps=2", "image_size=[32,40]",
            "progress=false"]


@pytest.mark.parametrize("kind", ["run_dir", "eval.out", "out"])
def test_row14_read_only_output_is_one_line(data_root, read_only_dir, tmp_path, capsys, kind) -> None:
    """Row 14: a read-only run_dir, eval.out or data out: one line naming the field, exit 2, before any work."""
    code, _, err = run_cli(capsys, *_command(kind, read_only_dir / "new", data_root, tmp_path))
    assert code == 2
    line = one_error_line(err)
    assert f"{kind}=" in line and "not writable" in line


@pytest.mark.parametrize("kind", ["run_dir", "eval.out", "out"])
def test_row14_output_below_a_file_is_one_line(data_root, tmp_path, capsys, kind) -> None:
    """The same for an output path whose parent is a regular file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, *_command(kind, blocker / "new", data_root, tmp_path))
    assert code == 2 and "not a directory" in one_error_line(err)
