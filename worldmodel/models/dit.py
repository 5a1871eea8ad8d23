"""``VideoActionDiT``: a DiT/SiT block stack with per-token adaLN-Zero over frame patches and action tokens.

Design choices (see docs/model.md):

* **Per-token conditioning.** Every token carries its own timestep; its conditioning vector is
  ``c = time_embed(t_token) + lang_embed(language)`` and each block maps ``SiLU(c)`` to its six adaLN-Zero
  vectors. Within a sample only a few distinct timesteps occur (clean, t, s), so the conditioning MLPs run on
  the unique (sample, t) pairs and are gathered back per token: the same function, a fraction of the cost.
* **Positions: factorised 3-axis RoPE** over (time, row, col) inside attention. It needs no table, so frames
  of any H x W and any clip length work without interpolation, and it encodes only relative offsets, which is
  what a dynamics model should depend on. Action tokens sit between the frames they connect (``TokenLayout``).
* **Attention** through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where available).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from worldmodel.models.conditioning import Condition, as_condition
from worldmodel.models.config import ModelConfig
from worldmodel.models.layout import TokenLayout, Tokens, unpatchify

FREQ_DIM = 256  # sinusoidal timestep features, as DiT
FILM_DIM = 32  # per-slot width of the instruction's FiLM path (L x FILM_DIM flattened into the conditioning)
TASK_DIM = 128  # width of the keypoint net's own task vector (``keypoint_language``)


@dataclass
class DiTOutput:
    """Result of one forward pass.

    Attributes:
        pred: network output per token (velocity or clean data, per ``ModelConfig.prediction``), or None
            when the heads were skipped.
        hidden: hidden states (B, N, D) after the requested numbers of blocks.
        points: (B, K, 2P) keypoints of the context frames, or None (no keypoints in this network).
    """

    pred: Tokens | None
    hidden: dict[int, Tensor] = field(default_factory=dict)
    points: Tensor | None = None


def timestep_features(t: Tensor, dim: int = FREQ_DIM, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of timesteps in [0, 1] (scaled by 1000 as DiT): (U,) -> (U, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def grid_position_features(rows: Tensor, cols: Tensor, dim: int, max_period: float = 100.0) -> Tensor:
    """Fixed 2-D sin-cos features of patch positions: (N,), (N,) -> (N, dim), half for the row, half for the
    column (``dim`` divisible by 4)."""
    quarter = dim // 4
    freqs = torch.exp(-math.log(max_period) * torch.arange(quarter, dtype=torch.float32) / quarter).to(rows.device)
    parts = []
    for axis in (rows, cols):
        args = axis.float()[:, None] * freqs[None]
        parts += [torch.sin(args), torch.cos(args)]
    return torch.cat(parts, dim=-1)


class SpatialSoftmaxKeypoints(nn.Module):
    """Frames (B, C, H, W) in [-1, 1] -> (B, 2P) keypoints: a small conv net's P heat maps (at half resolution),
    each reduced to the softmax-weighted mean of its (x, y) pixel coordinates in [-1, 1].

    With ``task_dim`` > 0 a task vector (B, task_dim) FiLMs the features before the heat maps (scale and shift
    per channel, zero-initialised: identity at first), so the instruction can choose which objects the maps find.
    """

    def __init__(self, channels: int, keypoints: int, width: int = 32, task_dim: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 5, stride=2, padding=2), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GroupNorm(8, 2 * width), nn.SiLU(),
            nn.Conv2d(2 * width, keypoints, 1))
        self.film = nn.Linear(task_dim, 4 * width) if task_dim else None

    def forward(self, frames: Tensor, task: Tensor | None = None) -> Tensor:
        if self.film is not None and task is not None:
            h = self.net[:5](frames)  # up to the second GroupNorm
            scale, shift = self.film(task.to(h.dtype))[..., None, None].chunk(2, dim=1)
            maps = self.net[5:](h * (1 + scale) + shift)  # (B, P, h, w)
        else:
            maps = self.net(frames)
        b, p, h, w = maps.shape
        attn = torch.softmax(maps.flatten(2).float(), dim=-1).view(b, p, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=maps.device)
        xs = torch.linspace(-1.0, 1.0, w, device=maps.device)
        x = (attn.sum(2) * xs).sum(-1)  # (B, P)
        y = (attn.sum(3) * ys).sum(-1)
        return torch.cat([x, y], dim=-1).to(frames.dtype)  # (B, 2P)


def squeeze_slots(layer: nn.Module, instr: Tensor) -> Tensor:
    """Instruction slots (B, L, E) squeezed by ``layer`` and flattened to (B, L·width), padding rows (all zero)
    kept at zero: the instruction's FiLM input, word order kept."""
    return (layer(instr) * (instr.abs().sum(-1, keepdim=True) > 0)).flatten(1)


class KeypointTask(nn.Module):
    """A :class:`Condition` -> (B, TASK_DIM) task vector for the keypoint net and head (``keypoint_language``):
    the sentence embedding plus, when the network has instruction tokens, every slot squeezed to FILM_DIM and the
    padded sequence flattened (word order kept). Missing parts count as zeros, as dropped language does."""

    def __init__(self, lang_dim: int, instruction_tokens: int, instruction_dim: int) -> None:
        super().__init__()
        self.lang_dim, self.tokens, self.dim = lang_dim, instruction_tokens, instruction_dim
        self.lang = nn.Linear(lang_dim, TASK_DIM)
        if instruction_tokens:
            self.slot = nn.Sequential(nn.LayerNorm(instruction_dim), nn.Linear(instruction_dim, FILM_DIM))
            self.instruction = nn.Linear(instruction_tokens * FILM_DIM, TASK_DIM)

    def forward(self, cond: Condition, batch: int, device: torch.device) -> Tensor:
        dtype = self.lang.weight.dtype
        lang = cond.lang if cond.lang is not None else torch.zeros(batch, self.lang_dim, device=device)
        h = self.lang(lang.to(dtype))
        if self.tokens:
            instr = cond.instruction
            if instr is None:
                instr = torch.zeros(batch, self.tokens, self.dim, device=device)
            h = h + self.instruction(squeeze_slots(self.slot, instr.to(dtype)))
        return F.silu(h)


def rope_tables(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables of factorised 3-axis RoPE.

    The head dimension is split into (time, row, col) parts: row and col get ``2·(d // 6)`` each, time the
    rest.

    Args:
        positions: (N, 3) float (time, row, col).
        head_dim: d, even.
        theta: base period.

    Returns:
        cos, sin: each (N, d/2).
    """
    axis = 2 * (head_dim // 6)
    dims = (head_dim - 2 * axis, axis, axis)
    angles = []
    for i, m in enumerate(dims):
        freqs = theta ** (-torch.arange(0, m, 2, device=positions.device, dtype=torch.float32) / m)  # (m/2,)
        angles.append(positions[:, i : i + 1].float() * freqs[None])
    ang = torch.cat(angles, dim=-1)  # (N, d/2)
    return ang.cos(), ang.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs of x (B, H, N, d) by angles (N, d/2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).type_as(x)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` whose weight follows the input's dtype, so bf16 autocast keeps the fused kernel."""

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)


class Attention(nn.Module):
    """Multi-head self-attention with optional QK-RMSNorm and RoPE, via SDPA."""

    def __init__(self, dim: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        hd = dim // heads
        self.q_norm = RMSNorm(hd, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(hd, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, H, N, d)
        q, k, v = qkv.unbind(0)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, d); mask (B, 1, 1, N) keys
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block with per-token adaLN-Zero (shift, scale, gate for attention and MLP)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads, cfg.qk_norm)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        mlp = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, mlp), nn.GELU(), nn.Linear(mlp, d))
        self.ada = nn.Linear(d, 6 * d)

    def modulation(self, c_act: Tensor, index: Tensor) -> Tensor:
        """Per-token adaLN vectors: SiLU'd conditioning (U, D) gathered by index (B, N) -> (B, N, 6D)."""
        return self.ada(c_act)[index]

    def forward(self, x: Tensor, c_act: Tensor, index: Tensor, cos: Tensor, sin: Tensor,
                mask: Tensor | None = None) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(c_act, index).chunk(6, dim=-1)  # each (B, N, D)
        x = x + g1 * self.attn(modulate(self.norm1(x), sh1, sc1), cos, sin, mask)
        return x + g2 * self.mlp(modulate(self.norm2(x), sh2, sc2))


class Projector(nn.Module):
    """Self-Flow projector: MLP D -> 2D -> D with SiLU, applied to student hidden states (B, N, D)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class VideoActionDiT(nn.Module):
    """Diffusion transformer over frame-patch and action tokens with per-token timesteps.

    Args:
        cfg: the model configuration.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.frame_embed = nn.Linear(cfg.patch_dim, d)  # a stride-p conv on patchified pixels
        self.action_embed = nn.Linear(cfg.action_dim, d)
        self.time_embed = nn.Sequential(nn.Linear(FREQ_DIM, d), nn.SiLU(), nn.Linear(d, d))
        self.lang_embed = nn.Sequential(nn.Linear(cfg.lang_dim, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.instruction_tokens:  # the encoder's states are unnormalised (norm ~10): LayerNorm, then project
            self.instruction_embed = nn.Sequential(nn.LayerNorm(cfg.instruction_dim), nn.Linear(cfg.instruction_dim, d))
            self.instruction_pos = nn.Parameter(torch.zeros(cfg.instruction_tokens, d))
            # FiLM path: every slot squeezed to FILM_DIM and the padded sequence flattened, so word order and the
            # object / drawer names also shift every token's adaLN conditioning, not only through attention
            self.instruction_film = nn.Sequential(nn.LayerNorm(cfg.instruction_dim),
                                                  nn.Linear(cfg.instruction_dim, FILM_DIM))
            self.instruction_cond = nn.Sequential(nn.Linear(cfg.instruction_tokens * FILM_DIM, d), nn.SiLU(),
                                                  nn.Linear(d, d))
        if cfg.state_dim:
            self.state_embed = nn.Sequential(nn.Linear(cfg.state_dim, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.keypoints:
            self.keypoint_net = SpatialSoftmaxKeypoints(cfg.channels, cfg.keypoints,
                                                        task_dim=TASK_DIM if cfg.keypoint_language else 0)
            self.keypoint_embed = nn.Sequential(nn.Linear(2 * cfg.keypoints, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.keypoint_film:  # the latest context frame's keypoints also shift every token's adaLN conditioning
            self.keypoint_cond = nn.Sequential(nn.Linear(2 * cfg.keypoints, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.keypoint_head:  # auxiliary: the latest frame's keypoints alone -> the clean action chunk
            self.keypoint_head = nn.Sequential(nn.Linear(2 * cfg.keypoints, d), nn.SiLU(), nn.Linear(d, d), nn.SiLU(),
                                               nn.Linear(d, cfg.future_frames * cfg.action_dim))
        if cfg.keypoint_language:  # the instruction steers the keypoint net (FiLM) and shifts the head's hidden layer
            self.keypoint_task = KeypointTask(cfg.lang_dim, cfg.instruction_tokens, cfg.instruction_dim)
            if cfg.keypoint_head:
                self.keypoint_head_task = nn.Linear(TASK_DIM, d)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(d, 2 * d)
        self.frame_head = nn.Linear(d, cfg.patch_dim)
        self.action_head = nn.Linear(d, cfg.action_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DiT initialisation: Xavier linears, N(0, 0.02) embedder MLPs, zero adaLN and output heads."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        mlps = [self.time_embed, self.lang_embed] + ([self.instruction_cond] if self.cfg.instruction_tokens else []) \
            + ([self.keypoint_cond] if self.cfg.keypoint_film else [])
        for mlp in mlps:
            nn.init.normal_(mlp[0].weight, std=0.02)
            nn.init.normal_(mlp[2].weight, std=0.02)
        if self.cfg.instruction_tokens:
            nn.init.normal_(self.instruction_pos, std=0.02)
        zero = [b.ada for b in self.blocks] + [self.final_ada, self.frame_head, self.action_head]
        if self.cfg.keypoint_language:  # the instruction's paths into the keypoint net and head start as identity
            zero += [self.keypoint_net.film] + ([self.keypoint_head_task] if self.cfg.keypoint_head else [])
        for lin in zero:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def condition(self, t: Tensor, lang: Tensor | Condition | None, points: Tensor | None = None
                  ) -> tuple[Tensor, Tensor]:
        """Per-token conditioning, computed once per distinct (sample, t).

        Args:
            t: (B, N) per-token timesteps in [0, 1].
            lang: (B, lang_dim) sentence embeddings (or a :class:`Condition`, whose ``lang`` is used), or None
                (zeros, i.e. unconditional).
            points: (B, K, 2P) keypoints of the context frames; the latest frame's feed the ``keypoint_film``
                path (None: not added).

        Returns:
            c_act: (U, D) ``SiLU(time_embed(t) + lang_embed(lang))`` for the U distinct (sample, t) pairs.
            index: (B, N) long, row of ``c_act`` for each token.
        """
        b = t.shape[0]
        # t in [0, 1], so key = 2b + t is unique per (sample, t) and exact in float64.
        key = t.double() + 2.0 * torch.arange(b, device=t.device, dtype=torch.float64)[:, None]
        uniq, index = torch.unique(key, return_inverse=True)  # (U,), (B, N)
        sample = torch.div(uniq, 2, rounding_mode="floor").long()
        t_u = (uniq - 2.0 * sample).float()
        cond = as_condition(lang)
        lang = cond.lang
        if lang is None:
            lang = torch.zeros(b, self.cfg.lang_dim, device=t.device)
        dtype = self.frame_embed.weight.dtype
        per_sample = self.lang_embed(lang.to(dtype))  # (B, D)
        if self.cfg.instruction_tokens:  # a missing instruction is all padding, as dropped language is in training
            instr = cond.instruction
            if instr is None:
                instr = torch.zeros(b, self.cfg.instruction_tokens, self.cfg.instruction_dim, device=t.device)
            instr = instr.to(dtype)
            per_sample = per_sample + self.instruction_cond(squeeze_slots(self.instruction_film, instr))
        if self.cfg.keypoint_film and points is not None:
            per_sample = per_sample + self.keypoint_cond(points[:, -1].to(dtype))
        c = self.time_embed(timestep_features(t_u).to(dtype)) + per_sample[sample]
        return F.silu(c), index

    def forward(
        self,
        x: Tokens,
        t: Tensor,
        layout: TokenLayout,
        lang: Tensor | Condition | None = None,
        return_hidden: Sequence[int] = (),
        output_heads: bool = True,
    ) -> DiTOutput:
        """Run the network.

        Args:
            x: noisy tokens: frames (B, Nf, P), actions (B, Na, A) or None (must match
                ``layout.has_actions``).
            t: (B, N) per-token timesteps, 1 = clean.
            layout: the token layout (K, F, grid, has_actions).
            lang: (B, lang_dim) sentence embedding, a :class:`~worldmodel.models.conditioning.Condition`
                (sentence, instruction tokens, robot state), or None.
            return_hidden: block counts k in 1..depth; the hidden state after the first k blocks is returned.
            output_heads: when False, stop after the last requested hidden state and skip the output heads.

        Returns:
            DiTOutput with ``pred`` (same shapes as ``x``) and ``hidden[k]`` (B, N, D). The clean prefix tokens
            (instruction, state) are internal: neither ``pred`` nor ``hidden`` contains them.
        """
        if (x.actions is not None) != layout.has_actions:
            raise ValueError(
                f"actions given={x.actions is not None} but layout.has_actions={layout.has_actions}"
            )
        if x.frames.shape[1] != layout.num_frame_tokens or t.shape[1] != layout.num_tokens:
            raise ValueError(
                f"token counts {x.frames.shape[1]} frames / t {tuple(t.shape)} do not match {layout}"
            )
        for k in return_hidden:
            if not 1 <= k <= self.cfg.depth:
                raise ValueError(f"return_hidden entries must be in 1..{self.cfg.depth}, got {k}")
        cond = as_condition(lang)
        h = self.frame_embed(x.frames)  # (B, Nf, D)
        positions = layout.positions().to(h.device)
        if self.cfg.frame_position:
            nf = layout.num_frame_tokens
            h = h + grid_position_features(positions[:nf, 1], positions[:nf, 2], self.cfg.hidden).to(h.dtype)
        if x.actions is not None:
            h = torch.cat([h, self.action_embed(x.actions.to(h.dtype))], dim=1)  # (B, N, D)
        points = self._keypoints(x.frames, layout, h.dtype, cond)
        prefix, prefix_pos, mask = self._prefix(cond, layout, h, points)
        if prefix is not None:
            h = torch.cat([prefix, h], dim=1)  # (B, Np + N, D)
            t = torch.cat([t.new_ones(t.shape[0], prefix.shape[1]), t], dim=1)
            positions = torch.cat([prefix_pos, positions], dim=0)
        n_prefix = 0 if prefix is None else prefix.shape[1]
        c_act, index = self.condition(t, cond, points)
        cos, sin = rope_tables(positions, self.cfg.head_dim, self.cfg.rope_theta)
        wanted = set(return_hidden)
        last = self.cfg.depth if output_heads else max(wanted, default=0)
        hidden: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks[:last]):
            if self.cfg.checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(block, h, c_act, index, cos, sin, mask, use_reentrant=False)
            else:
                h = block(h, c_act, index, cos, sin, mask)
            if i + 1 in wanted:
                hidden[i + 1] = h[:, n_prefix:]
        if not output_heads:
            return DiTOutput(pred=None, hidden=hidden, points=points)
        shift, scale = self.final_ada(c_act)[index[:, n_prefix:]].chunk(2, dim=-1)  # (B, N, D) each
        h = modulate(self.final_norm(h[:, n_prefix:]), shift, scale)
        nf = layout.num_frame_tokens
        frames = self.frame_head(h[:, :nf])  # (B, Nf, P)
        actions = self.action_head(h[:, nf:]) if x.actions is not None else None  # (B, Na, A)
        return DiTOutput(pred=Tokens(frames, actions), hidden=hidden, points=points)

    def keypoint_actions(self, points: Tensor, lang: Tensor | Condition | None = None) -> Tensor:
        """The auxiliary ``keypoint_head``'s clean action chunk (B, F, A) from keypoints ``points`` (B, K, 2P)
        (their latest frame only) and, with ``keypoint_language``, the instruction in ``lang`` (None: none)."""
        if not self.cfg.keypoint_head:
            raise ValueError("this network has no keypoint_head (model.keypoint_head=false)")
        h = self.keypoint_head[0](points[:, -1])
        if self.cfg.keypoint_language:
            h = h + self.keypoint_head_task(self.keypoint_task(as_condition(lang), points.shape[0], points.device))
        return self.keypoint_head[1:](h).view(points.shape[0], self.cfg.future_frames, self.cfg.action_dim)

    def keypoints(self, context: Tensor, lang: Tensor | Condition | None = None) -> Tensor:
        """(B, K, 2P) keypoints of model-space context frames ``context`` (B, K, C, H, W), steered by the
        instruction in ``lang`` when the network has ``keypoint_language``."""
        b, k = context.shape[:2]
        task = None
        if self.cfg.keypoint_language:
            task = self.keypoint_task(as_condition(lang), b, context.device).repeat_interleave(k, 0)
        return self.keypoint_net(context.flatten(0, 1), task).view(b, k, -1)

    def _keypoints(self, frames: Tensor, layout: TokenLayout, dtype: torch.dtype, cond: Condition
                   ) -> Tensor | None:
        """(B, K, 2P) spatial-softmax keypoints of the context frames in ``frames`` (B, Nf, P), or None (no
        keypoints in this network or no context frames)."""
        if not self.cfg.keypoints or not layout.context_frames:
            return None
        k, (gh, gw), p = layout.context_frames, layout.grid, self.cfg.patch
        context = unpatchify(frames[:, : k * gh * gw], k, gh * p, gw * p, p)  # (B, K, C, H, W)
        return self.keypoints(context.to(dtype), cond)

    def _prefix(self, cond: Condition, layout: TokenLayout, h: Tensor, points: Tensor | None = None
                ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """The clean prefix tokens this network was built for: L instruction tokens, K state tokens, then K
        keypoint tokens (``points`` (B, K, 2P), from the context frames' own pixels).

        Instruction tokens sit at time -1 and state token k at context frame k, both at the grid centre (RoPE);
        a learned embedding per instruction slot carries word order. All-zero instruction rows are padding and
        are masked out as attention keys. A part that is None adds no tokens (the same as all-padding for the
        instruction); state tokens need the layout's K to match the state's.

        Returns:
            prefix (B, Np, D) or None, its positions (Np, 3), and the key mask (B, 1, 1, Np + N) bool or None.
        """
        cfg, b = self.cfg, h.shape[0]
        centre = ((layout.grid[0] - 1) / 2, (layout.grid[1] - 1) / 2)
        at_context = torch.tensor([[float(k), *centre] for k in range(layout.context_frames)])  # (K, 3)
        parts, pos, keep = [], [], []
        masked = False  # whether any key is left out (padding or a missing state): only then build a mask
        instr = cond.instruction if cfg.instruction_tokens else None
        if instr is not None:
            if instr.shape[1:] != (cfg.instruction_tokens, cfg.instruction_dim):
                raise ValueError(f"instruction must be (B, {cfg.instruction_tokens}, {cfg.instruction_dim}), "
                                 f"got {tuple(instr.shape)}")
            instr = instr.to(h.dtype)
            present = instr.abs().sum(-1) > 0  # (B, L)
            parts.append(self.instruction_embed(instr) + self.instruction_pos)
            pos.append(torch.tensor([[-1.0, *centre]]).expand(cfg.instruction_tokens, 3))
            keep.append(present)
            masked = True
        if cfg.state_dim and layout.context_frames and cond.state is not None:
            state = cond.state
            if state.shape[1:] != (layout.context_frames, cfg.state_dim):
                raise ValueError(f"state must be (B, K={layout.context_frames}, {cfg.state_dim}), "
                                 f"got {tuple(state.shape)}")
            missing = state.isnan().all(-1)  # (B, K): dropped states are left out as attention keys
            state = torch.where(missing[..., None], torch.zeros_like(state), state)
            parts.append(self.state_embed(state.to(h.dtype)))
            pos.append(at_context)
            keep.append(~missing.to(h.device))
            masked = masked or bool(missing.any())
        if points is not None:
            parts.append(self.keypoint_embed(points))
            pos.append(at_context)
            keep.append(torch.ones(b, points.shape[1], dtype=torch.bool, device=h.device))
        if not parts:
            return None, None, None
        mask = None
        if masked:
            keys = torch.cat([*keep, torch.ones(b, h.shape[1], dtype=torch.bool, device=h.device)], dim=1)
            mask = keys[:, None, None, :]  # (B, 1, 1, Np + N)
        return torch.cat(parts, dim=1), torch.cat(pos, dim=0).to(h.device), mask

    def features(self, x: Tokens, t: Tensor, layout: TokenLayout, lang: Tensor | Condition | None,
                 block: int) -> Tensor:
        """Hidden states (B, N, D) after the first ``block`` blocks, running no further (for Self-Flow
        targets, feature-space distances and later heads)."""
        return self(x, t, layout, lang, return_hidden=(block,), output_heads=False).hidden[block]
