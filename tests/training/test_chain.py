"""The CLI chain on CPU: pretrain -> finetune rt1 (init) -> load_checkpoint; init mismatches; NaN stops."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import losses, run_cli
from worldmodel.objectives import GenerationContext, generate
from worldmodel.training import list_checkpoints, load_checkpoint
from worldmodel.training.checkpoint import PROGRESS_FILE


@pytest.fixture(scope="module")
def pretrained(common, tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain")
    assert run_cli("pretrain", *common, f"run_dir={run}") == 0
    return run


def test_pretrain_writes_run_dir(pretrained) -> None:
    assert (pretrained / "config.yaml").is_file()
    assert sorted(losses(pretrained)) == list(range(1, 9))
    ckpts = list_checkpoints(pretrained)
    assert [c.name for c in ckpts] == ["step_00000004", "step_00000008"]
    meta = json.loads((ckpts[-1] / "meta.json").read_text())
    assert meta["mode"] == "pretrain" and meta["action_stats"] is None and meta["model"]["name"] == "tiny"
    assert meta["untrained"] == ["action_embed.", "action_head."]
    assert "progress_head" not in meta and not (ckpts[-1] / PROGRESS_FILE).exists()  # no head in pretraining
    assert load_checkpoint(pretrained).progress_head is None
    assert (pretrained / "samples" / "step_00000008.png").is_file()
    # the action layers are never trained in video pretraining
    first, last = (load_file(str(c / "model.safetensors")) for c in ckpts)
    assert torch.equal(first["action_head.weight"], last["action_head.weight"])
    assert not torch.equal(first["blocks.0.attn.qkv.weight"], last["blocks.0.attn.qkv.weight"])


def test_finetune_from_pretrain_then_load(pretrained, common, tmp_path, capsys) -> None:
    run = tmp_path / "ft"
    assert run_cli("finetune", "rt1", *common, f"init={pretrained}", f"run_dir={run}") == 0
    out = capsys.readouterr().out
    assert "freshly initialised: action_embed.bias, action_embed.weight, action_head.bias" in out
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 8 and row["loss/flow_actions"] > 0
    for key in ("loss/rep", "lr", "grad_norm", "samples_per_s", "tokens_per_s"):
        assert key in row
    assert any("loss/progress" in json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())

    loaded = load_checkpoint(run)
    assert loaded.step == 8 and loaded.model.cfg.name == "tiny" and not loaded.model.training
    assert loaded.action_stats is not None and len(loaded.action_stats.q01) == 7
    assert loaded.config.train.steps == 8 and loaded.meta["mode"] == "finetune"
    # the progress head starts fresh (the pretraining checkpoint has none) and is saved
    assert loaded.progress_head is not None and (loaded.path / PROGRESS_FILE).is_file()
    assert loaded.meta["progress_head"] == loaded.progress_head.config.to_dict()
    ema = load_file(str(loaded.path / "ema.safetensors"))
    assert all(torch.equal(v, ema[k]) for k, v in loaded.model.state_dict().items())
    raw = load_checkpoint(loaded.path, ema=False)
    assert not torch.equal(raw.model.frame_head.weight, loaded.model.frame_head.weight)
    # the loaded model runs every verb without the dataset
    cfg = loaded.model.cfg
    frames = torch.zeros(2, cfg.context_frames, 3, cfg.frame_height, cfg.frame_width)
    res = generate(loaded.model, "policy", GenerationContext(frames, cfg.future_frames, lang=torch.zeros(2, 512)),
                   steps=2, generator=torch.Generator().manual_seed(0))
    assert res.actions.shape == (2, cfg.future_frames, 7) and torch.isfinite(res.frames).all()


def test_init_shape_mismatch_names_parameter(pretrained, common, tmp_path, capsys) -> None:
    rc = run_cli("finetune", "rt1", *common, "model.hidden=32", f"init={pretrained}", f"run_dir={tmp_path}")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "frame_embed.weight" in err and "[64, 192]" in err and "[32, 192]" in err


def test_init_adds_an_optional_input_fresh(pretrained, common, tmp_path, capsys) -> None:
    # keypoints added to a model trained without them: those layers start fresh, the rest loads
    run = tmp_path / "kp"
    assert run_cli("finetune", "rt1", *common, "model.keypoints=4", f"init={pretrained}", f"run_dir={run}") == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("init:") and "freshly initialised" in x)
    fresh = line.split("freshly initialised: ")[1].split(", ")
    assert {n.split(".")[0] for n in fresh} == {"action_embed", "action_head", "keypoint_net", "keypoint_embed"}
    # the other way round the checkpoint has layers this model lacks: a clear error naming one
    rc = run_cli("finetune", "rt1", *common, f"init={run}", f"run_dir={tmp_path / 'back'}")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "keypoint_" in err and "does not exist in this model" in err


def test_init_with_another_chunk_length_starts_only_the_chunk_sized_layers_fresh(pretrained, common, tmp_path,
                                                                                 capsys) -> None:
    # the keypoint head's output is F x action_dim: an F = 4 model from an F = 2 one starts that layer fresh
    head = ["model.keypoints=4", "model.keypoint_head=true", "objective.keypoint_action_weight=1"]
    first = tmp_path / "f2"
    assert run_cli("finetune", "rt1", *common, *head, f"init={pretrained}", f"run_dir={first}") == 0
    capsys.readouterr()

    def fresh_after(*overrides: str) -> set[str]:
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        assert run_cli("finetune", "rt1", *common, *head, *overrides, f"init={first}", f"run_dir={run}") == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("init:"))
        return set(line.split("freshly initialised: ")[1].split(", ")) if "freshly" in line else set()

    assert fresh_after("model.future_frames=4") == {"keypoint_head.4.weight", "keypoint_head.4.bias"}
    assert not any(name.startswith("keypoint_head.") for name in fresh_after())  # same F: everything loads


def test_existing_run_needs_resume(pretrained, common, capsys) -> None:
    assert run_cli("pretrain", *common, f"run_dir={pretrained}") == 2
    assert "resume=auto" in capsys.readouterr().err


def test_nan_loss_stops_naming_step_and_keeps_checkpoints(common, tmp_path, monkeypatch, capsys) -> None:
    from worldmodel.training import trainer

    real, calls = trainer.training_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 6:
            out.total = out.total * float("nan")
        return out

    monkeypatch.setattr(trainer, "training_loss", poisoned)
    rc = run_cli("pretrain", *common, "train.steps=20", "train.ckpt_every=2", "train.sample_every=0",
                 f"run_dir={tmp_path}")
    err = capsys.readouterr().err
    assert rc == 1 and "non-finite loss at step 6" in err and "step_00000004" in err
    assert [c.name for c in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000004"]
    assert load_checkpoint(tmp_path).step == 4
    assert max(losses(tmp_path)) == 5


def test_keypoint_weight_without_a_keypoint_head_is_refused_before_training(common, tmp_path, capsys) -> None:
    run = tmp_path / "kpw"
    rc = run_cli("finetune", "rt1", *common, "model.keypoints=4", "objective.keypoint_action_weight=1",
                 f"run_dir={run}")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "model.keypoint_head=true" in err
    assert not (run / "checkpoints").exists()  # nothing trained or half-written


def test_init_into_a_model_without_an_optional_input_leaves_its_layers_out(tmp_path) -> None:
    """An ablation that switches off state or instruction tokens starts from the full recipe's checkpoint."""
    from dataclasses import asdict

    from worldmodel.models import Projector, build_model
    from worldmodel.training.checkpoint import CheckpointContents, write_checkpoint
    from worldmodel.training.state import init_from_checkpoint

    torch.manual_seed(0)
    full = build_model("tiny", state_dim=8, instruction_tokens=4)
    proj = Projector(full.cfg.hidden)
    state = {k: v.clone() for k, v in full.state_dict().items()}
    meta = {"mode": "finetune", "model": {**asdict(full.cfg), "checkpointing": False}}
    ckpt = write_checkpoint(tmp_path, CheckpointContents(3, state, state, proj.state_dict(), {}, {}, meta, ""), 1)

    torch.manual_seed(1)
    ablated = build_model("tiny", state_dim=0, instruction_tokens=4)
    with pytest.raises(ValueError, match="init_leave_out=true"):  # refused unless asked for
        init_from_checkpoint(ablated, Projector(ablated.cfg.hidden), ckpt)
    report = init_from_checkpoint(ablated, Projector(ablated.cfg.hidden), ckpt, leave_out=True)
    assert report["dropped"] and all(k.startswith("state_embed.") for k in report["dropped"])
    assert not report["fresh"]
    for name, value in ablated.state_dict().items():  # everything else is the checkpoint's
        torch.testing.assert_close(value, state[name])

    torch.manual_seed(1)
    plain = build_model("tiny", state_dim=0, instruction_tokens=0)
    report = init_from_checkpoint(plain, Projector(plain.cfg.hidden), ckpt, leave_out=True)
    assert {k.split(".")[0] for k in report["dropped"]} >= {"state_embed"} and len(report["dropped"]) > 4
    # the instruction's share of the keypoint net's task vector goes with the instruction tokens
    torch.manual_seed(0)
    kp = dict(keypoints=4, keypoint_language=True)
    rich = build_model("tiny", instruction_tokens=4, **kp)
    state = {k: v.clone() for k, v in rich.state_dict().items()}
    meta = {"mode": "finetune", "model": {**asdict(rich.cfg), "checkpointing": False}}
    proj = Projector(rich.cfg.hidden).state_dict()
    ckpt2 = write_checkpoint(tmp_path / "kp", CheckpointContents(3, state, state, proj, {}, {}, meta, ""), 1)
    lean = build_model("tiny", instruction_tokens=0, **kp)
    report = init_from_checkpoint(lean, Projector(lean.cfg.hidden), ckpt2, leave_out=True)
    assert any(k.startswith("keypoint_task.instruction.") for k in report["dropped"]) and not report["fresh"]
    torch.testing.assert_close(lean.keypoint_task.lang.weight, state["keypoint_task.lang.weight"])

    with pytest.raises(ValueError, match="has shape"):  # a real mismatch is still refused
        init_from_checkpoint(build_model("tiny", state_dim=8, instruction_tokens=4, hidden=96),
                             Projector(96), ckpt, leave_out=True)
