"""The world model as the planner sees it: propose / imagine / cost callables over a :class:`WorldModel`.

Candidates stay in model space between calls (frames (n, T, 3, h, w) in [-1, 1]); actions are in RT-1 units (the
planner's Gaussian lives there, with a per-dim scale from the action statistics) and are normalised only to
enter the network. The cost of a candidate (lower is better; ``PlanResult.scores = -cost``) is

    cost = - w_progress · progress(last imagined frame | context + imagined clip, instruction)
           + w_goal     · (1 - cos(features(last imagined frame), features(goal frame)))    [with a goal frame]
           + w_smooth   · mean_t |a_{t+1} - a_t|^2                                           [normalised actions]

Progress comes from the model's progress head, features from its own hidden states: no external encoder.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.models.conditioning import Condition
from worldmodel.planner.config import PlannerConfig
from worldmodel.planner.planner import PlanContext, PlanFns, Planner
from worldmodel.validation import check_frames, check_goal


def world_model_fns(world_model: Any, config: PlannerConfig, imaginer: Any = None) -> PlanFns:
    """Build the planner's callables from a :class:`worldmodel.WorldModel` and the config's score weights.

    A progress weight without a progress head in the model is dropped with a warning (the remaining terms
    score the candidates; with none left, best-of-N executes the policy's first proposal).

    Args:
        world_model: the world model (it proposes; without ``imaginer`` it also imagines and scores).
        config: supplies ``progress_weight``, ``goal_weight``, ``smoothness_weight``, ``proposal_temperature``
            and ``shared_noise``.
        imaginer: a second world model whose ``dynamics`` verb re-imagines the proposals and whose progress head
            and features score them (None: ``world_model`` itself). At the reference's size one network does not
            hold both an imitating policy and a dynamics that follows the action (thirteenth session,
            docs/experiments.md); a dynamics-trained model beside the policy does. Needs ``config.reimagine``
            (the proposals' joint futures are the proposer's own).

    Returns:
        :class:`PlanFns` whose ``plan`` inputs are frames (K', H, W, 3) uint8, language (512,) and an optional
        goal frame (H, W, 3) uint8, and whose ``imagined_frames`` are (T, H, W, 3) uint8 at the input size.
    """
    wm = world_model
    im = world_model if imaginer is None else imaginer  # imagines and scores
    if imaginer is not None:
        if not config.reimagine:
            raise ValueError("planner: an imagination model needs planner.reimagine=true (without it the candidates' "
                             "futures are the proposing model's own joint samples)")
        if not imaginer.imagines:
            raise ValueError("planner: the imagination model has no dynamics verb (an action-only model)")
    w_progress, w_goal, w_smooth = config.progress_weight, config.goal_weight, config.smoothness_weight
    if w_progress > 0 and not im.has_progress:
        warnings.warn("planner: the world model has no progress head; scoring without the progress term",
                      stacklevel=2)
        w_progress = 0.0

    def prepare(frames: Any, language: Any, goal_frame: Any) -> PlanContext:
        # validated here, before any tensor op: one error naming the field (never NaN actions or a shape error)
        arr = check_frames(frames, "frames", ndims=(4,))
        lang = wm.embed_language(language, 1)  # Condition of batch 1
        cache: dict[str, Any] = {"size": arr.shape[1:3]}
        im_lang = lang
        if imaginer is not None:  # its own context and conditioning (its resolution, instruction and state inputs)
            im_lang = im.embed_language(language, 1)
            cache["imagine"] = (im.context(arr), im_lang)
        goal_arr = check_goal(goal_frame, w_goal)  # a goal with goal_weight=0 is an error, not ignored
        goal = None if goal_arr is None else im.features_model(im.encode_frames(goal_arr)[None], im_lang)  # (1, D)
        return PlanContext(wm.context(arr), lang, goal, cache=cache)

    def expand(ctx: PlanContext, n: int) -> tuple[Tensor, Condition]:
        return ctx.frames.expand(n, -1, -1, -1, -1), ctx.language.expand(n)

    def expand_im(ctx: PlanContext, n: int) -> tuple[Tensor, Condition]:  # the imagining model's context
        if "imagine" not in ctx.cache:
            return expand(ctx, n)
        frames, lang = ctx.cache["imagine"]
        return frames.expand(n, -1, -1, -1, -1), lang.expand(n)

    def propose(ctx: PlanContext, n: int, horizon: int, steps: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        actions, frames = wm.rollout_model(*expand(ctx, n), horizon, steps, gen,
                                           temperature=config.proposal_temperature)
        return wm.unnormalize(actions), frames  # (n, T, 7) RT-1 units, (n, T, 3, h, w)

    def imagine(ctx: PlanContext, actions: Tensor, steps: int, gen: torch.Generator) -> Tensor:
        n, horizon = actions.shape[:2]
        return im.rollout_model(*expand_im(ctx, n), horizon, steps, gen, im.normalize(actions),
                                shared_noise=config.shared_noise)[1]

    def cost(ctx: PlanContext, frames: Tensor, actions: Tensor) -> Tensor:
        n = frames.shape[0]
        total = torch.zeros(n, device=frames.device)
        context, lang = expand_im(ctx, n)
        if w_progress > 0:
            total -= w_progress * im.progress_model(torch.cat([context, frames], dim=1), lang)[:, -1]
        if ctx.goal is not None:
            feats = im.features_model(frames[:, -1], lang)  # (n, D)
            total += w_goal * (1 - F.cosine_similarity(feats, ctx.goal, dim=-1))
        if w_smooth > 0 and actions.shape[1] > 1:
            norm = wm.normalize(actions)  # the proposer's units, the same for every candidate
            total += w_smooth * (norm.diff(dim=1) ** 2).sum(-1).mean(-1)
        return total

    def render(ctx: PlanContext, frames: Tensor) -> np.ndarray:
        return im.decode_frames(frames, ctx.cache["size"])  # (T, H, W, 3) uint8

    scale = np.ones(7, np.float32)
    if wm.stats is not None:
        lo, hi = wm.stats.bounds()
        scale[:6] = (hi - lo) / 2
    return PlanFns(propose, imagine, cost, torch.as_tensor(wm.action_low), torch.as_tensor(wm.action_high),
                   torch.as_tensor(scale), prepare, render, wm.device)


def make_planner(world_model: Any, config: PlannerConfig | None = None, imaginer: Any = None) -> Planner:
    """A :class:`Planner` over a world model's callables (:func:`world_model_fns`) with ``config``'s weights;
    ``imaginer``: a second world model that re-imagines and scores the proposals (None: the same one)."""
    config = config or PlannerConfig()
    return Planner(world_model_fns(world_model, config, imaginer), config)
