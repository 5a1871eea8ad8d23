"""Pretrain the keypoint net by behaviour cloning from pixels, and write an ``init=`` checkpoint that carries it.

    python scripts/pretrain_keypoints.py --data outputs/j15/data_pm1k --init checkpoints/reference \
        --out outputs/kpinit --steps 4000 [--batch 64 --lr 1e-3 --keypoints 32 --language]

The spatial-softmax keypoint net (``model.keypoints``) and the auxiliary ``keypoint_head`` are small, so a step of
them alone costs a fraction of a DiT step: the script holds every clip of the dataset in memory (frames at the init
model's resolution) and regresses the clean action chunk from the latest context frame's keypoints alone, the
copycat probe's conv BC, at a batch and a number of steps that the DiT could not afford on a CPU. It prints the MSE on
the last ``--heldout`` episodes as it goes, and, with ``--probe``, the head's follow slope on PickCan
(``worldmodel.evaluation.probes``; 1 = its first action moves as the expert's over the can grid, 0 = ignores it).
With ``--language`` the instruction steers the keypoint net and head (``model.keypoint_language``; the init's
instruction tokens, when it has them, are fed too), so that one keypoint net can serve tasks on different objects.

The output is a copy of ``--init`` whose EMA and student weights also hold ``keypoint_net.*`` and
``keypoint_head.*``; its model config and action statistics are those of the keypoint network and the data
(keypoint layers the init already had are replaced; the manifest is rewritten; it is written to a temporary
folder and renamed). Fine-tune from it with
``init=OUT model.keypoints=P model.keypoint_head=true [model.keypoint_language=true]`` (the keypoint token and
FiLM layers start fresh, as for any optional input an init checkpoint lacks). docs/experiments.md, fifth and
sixth sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

KEYPOINT_PREFIXES = ("keypoint_net.", "keypoint_head.", "keypoint_task.", "keypoint_head_task.")
WEIGHTS = ("ema.safetensors", "model.safetensors")


class HeadPolicy:
    """The keypoint head as a ``propose``-able policy, for :func:`worldmodel.evaluation.probes.vision_probe`."""

    def __init__(self, world_model, model) -> None:
        self.wm, self.model = world_model, model

    def propose(self, frames, language, n: int = 1, steps: int = 1, generator=None):
        import numpy as np
        import torch

        ctx = self.wm.context(np.asarray(frames))  # (1, K, 3, h, w)
        cond = self.wm.embed_language(language, 1)
        with torch.no_grad():
            points = self.model.keypoints(ctx, cond)
            actions = self.wm.unnormalize(self.model.keypoint_actions(points, cond)).numpy()
        return argparse.Namespace(actions=np.repeat(actions, n, 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="RLDS dataset folder (as data.dir)")
    parser.add_argument("--init", default="checkpoints/reference", help="checkpoint to extend")
    parser.add_argument("--out", required=True, help="new checkpoint folder (must not exist)")
    parser.add_argument("--keypoints", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--heldout", type=int, default=100, help="last N episodes kept out of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=500)
    parser.add_argument("--probe", action="store_true", help="print the head's PickCan follow slope at the end")
    parser.add_argument("--language", action="store_true",
                        help="the instruction steers the keypoint net and head (model.keypoint_language)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        parser.error(f"--out {out} exists; give a new folder")
    for name in ("keypoints", "steps", "batch", "heldout"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    from worldmodel import WorldModel
    from worldmodel.data import ClipConfig, ClipDataset, compute_action_stats, open_rlds
    from worldmodel.integrity import read_json, write_manifest
    from worldmodel.io import META, resolve_checkpoint
    from worldmodel.models import Condition, build_model

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    try:
        init = resolve_checkpoint(args.init)
        wm = WorldModel.from_checkpoint(init)
        dataset = open_rlds(args.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = replace(wm.cfg, keypoints=args.keypoints, keypoint_head=True, keypoint_language=args.language)
    model = build_model(cfg)
    wm.stats = compute_action_stats(dataset)  # as the fine-tuning run computes them from the same data
    t0 = time.time()
    tokens = cfg.instruction_tokens if args.language else 0
    clips = ClipDataset(args.data, ClipConfig(cfg.context_frames, cfg.future_frames,
                                              image_size=(cfg.frame_height, cfg.frame_width), shuffle=False, epochs=1,
                                              instruction_tokens=tokens), wm.stats)
    frames, actions, episodes, language = [], [], [], {}
    for clip in clips:
        frames.append(clip["frames"][:cfg.context_frames])
        actions.append(clip["actions"])
        episodes.append(int(clip["clip_id"][0]))
        language.setdefault(episodes[-1], (clip["language"], clip.get("instruction")))
    frames, actions, episodes = torch.stack(frames), torch.stack(actions), np.asarray(episodes)
    ids = np.unique(episodes)  # the last --heldout episodes are kept out (none when there are no more than that)
    held = np.isin(episodes, ids[-args.heldout:]) if len(ids) > args.heldout else np.zeros(len(episodes), bool)
    train, test = np.where(~held)[0], np.where(held)[0]
    print(f"{len(frames)} clips of {len(ids)} episodes in memory ({time.time() - t0:.0f} s); "
          f"{len(test)} held out", flush=True)

    sentences = torch.stack([language[e][0] for e in ids])  # one sentence / instruction per episode (sorted ids)
    instructions = torch.stack([language[e][1] for e in ids]) if tokens else None
    clip_episode = torch.as_tensor(np.searchsorted(ids, episodes))  # each clip's row in them

    def predict(rows: np.ndarray) -> torch.Tensor:
        ep = clip_episode[rows]
        cond = Condition(sentences[ep], None if instructions is None else instructions[ep])
        points = model.keypoints(frames[rows], cond)  # (B, K, 2P)
        return model.keypoint_actions(points, cond)

    params = [p for name, p in model.named_parameters() if name.startswith(KEYPOINT_PREFIXES)]
    opt = torch.optim.AdamW(params, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        rows = rng.choice(train, args.batch)
        loss = (predict(rows) - actions[rows]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.log_every == 0 or step == args.steps:
            with torch.no_grad():
                val = (predict(test) - actions[test]).pow(2).mean().item() if len(test) else float("nan")
            print(f"step {step}: train MSE {loss.item():.3f}, held-out MSE {val:.3f} ({time.time() - t0:.0f} s)",
                  flush=True)
    model.eval()
    if args.probe:
        from worldmodel.evaluation.probes import follow_slope, vision_probe

        slopes = [follow_slope(vision_probe(HeadPolicy(wm, model), "PickCan", seed, n=1))[0]
                  for seed in (10003, 10004, 10005, 10006)]
        print("keypoint head follow slope, PickCan seeds 10003-10006: "
              + " / ".join(f"{s:+.2f}" for s in slopes), flush=True)
    # every keypoint layer of the new network, so the output loads as a model; the ones this script did not train
    # (the keypoint token / FiLM layers) are listed as untrained, so a fine-tuning run starts them fresh
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k.startswith("keypoint_")}
    untrained = sorted({k.split(".")[0] + "." for k in tensors if not k.startswith(KEYPOINT_PREFIXES)})
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.copytree(init, tmp)
    for name in WEIGHTS:  # an init that already has keypoint layers loses all of them: they read another net
        weights = {k: v for k, v in load_file(tmp / name).items() if not k.startswith("keypoint_")}
        weights.update(tensors)
        save_file(weights, tmp / name)
    meta = read_json(tmp / META)
    meta.update(model={**asdict(cfg), "checkpointing": False}, action_stats=wm.stats.to_dict(),
                untrained=sorted({*meta.get("untrained", []), *untrained}))
    (tmp / META).write_text(json.dumps(meta, indent=1))
    write_manifest(tmp, meta.get("step"))
    tmp.rename(out)
    print(f"wrote {out}: {args.init} + {len(tensors)} keypoint tensors; fine-tune with init={out} "
          f"model.keypoints={args.keypoints} model.keypoint_head=true"
          + (" model.keypoint_language=true" if args.language else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
