"""VGGT aggregator ("Global-Frame Attention"): alternating frame and global attention blocks.

Per frame the token sequence is ``[camera(1), registers(R), patches(P)]``; the camera and register
tokens come from a 2-slot table (slot 0 for frame 0, slot 1 for the other frames — what marks the
world frame). Frame blocks attend within ``[B·S, 1+R+P, C]``; global blocks over
``[B, S·(1+R+P), C]``. RoPE positions are the patch grid (y, x) + 1, special tokens at (0, 0).
Returned layer ``i`` is ``cat(frame_out_i, global_out_i)`` on channels: ``[B, S, 1+R+P, 2C]``.

With ``global_merge_ratio > 0`` the global blocks from ``global_merge_start`` on merge the tokens entering
attention (:mod:`recon.layers.token_merge`); the output shapes are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from recon.config import AggregatorConfig
from recon.layers.block import Block
from recon.layers.rope import RopePositions, RotaryEmbedding2D, patch_positions
from recon.layers.token_merge import MergePlan, merge_plan


def frame_slot_tokens(table: Tensor, batch: int, frames: int) -> Tensor:
    """``table [1, 2, K, C]`` → ``[B·S, K, C]``: slot 0 for frame 0, slot 1 for the others."""
    first = table[:, :1].expand(batch, 1, *table.shape[2:])
    rest = table[:, 1:].expand(batch, frames - 1, *table.shape[2:])
    return torch.cat([first, rest], dim=1).reshape(batch * frames, *table.shape[2:])


class Aggregator(nn.Module):
    """Patch tokens ``[B, S, P, C]`` → ({layer: ``[B, S, 1+R+P, 2C]``}, patch_start_idx).

    Args:
        dim: token width C (the encoder's hidden size).
        cfg: depth, heads, registers, qk-norm, RoPE frequency, LayerScale init, checkpointing.
        return_layers: layer indices to keep (default: all; the model passes only what heads use).
    """

    def __init__(self, dim: int, cfg: AggregatorConfig, return_layers: list[int] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        self.rope = RotaryEmbedding2D(cfg.rope_freq) if cfg.rope_freq > 0 else None
        if self.rope is not None and (dim // cfg.num_heads) % 4:
            raise ValueError(f"recon.aggregator: head_dim {dim // cfg.num_heads} must be divisible by 4 for 2D RoPE")

        def make() -> Block:
            return Block(
                dim, cfg.num_heads, cfg.mlp_ratio, qk_norm=cfg.qk_norm, rope=self.rope, init_value=cfg.layerscale_init
            )

        self.frame_blocks = nn.ModuleList([make() for _ in range(cfg.depth)])
        self.global_blocks = nn.ModuleList([make() for _ in range(cfg.depth)])
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, cfg.num_register_tokens, dim) * 1e-6)
        self.patch_start_idx = 1 + cfg.num_register_tokens
        self.return_layers = sorted(set(range(cfg.depth) if return_layers is None else return_layers))
        bad = [i for i in self.return_layers if not 0 <= i < cfg.depth]
        if bad:
            raise ValueError(
                f"recon.aggregator: requested layers {bad} out of range for recon.aggregator.depth = {cfg.depth}"
            )

    def _run(self, block: Block, x: Tensor, pos: RopePositions | None, merge: MergePlan | None = None) -> Tensor:
        if self.cfg.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, pos, merge, use_reentrant=False)
        return block(x, pos, merge)

    def _merge_plan(self, frames: int, num_patches: int, positions: RopePositions | None, device) -> MergePlan | None:
        """The global blocks' token-merge plan, or None when nothing would be merged (ratio 0, one frame)."""
        ratio = self.cfg.global_merge_ratio
        if ratio <= 0 or frames < 2 or int(ratio * num_patches) == 0:
            return None
        return merge_plan(
            frames,
            self.patch_start_idx,
            num_patches,
            ratio,
            positions=None if positions is None else positions.positions,
            proportional=self.cfg.global_merge_proportional,
            device=device,
            max_position=None if positions is None else positions.max_position,
        )

    def forward(
        self, patch_tokens: Tensor, grid_hw: tuple[int, int], return_layers: list[int] | None = None
    ) -> tuple[dict[int, Tensor], int]:
        """patch_tokens ``[B, S, P, C]`` with ``P = h·w`` of ``grid_hw`` → (layers dict, patch_start_idx)."""
        if patch_tokens.dim() != 4 or patch_tokens.shape[-1] != self.dim:
            raise ValueError(f"aggregator: patch tokens must be [B,S,P,{self.dim}], got {tuple(patch_tokens.shape)}")
        b, s, p, c = patch_tokens.shape
        if p != grid_hw[0] * grid_hw[1]:
            raise ValueError(f"aggregator: {p} patch tokens do not match grid {grid_hw}")
        keep = set(self.return_layers if return_layers is None else return_layers)
        special = torch.cat(
            [frame_slot_tokens(self.camera_token, b, s), frame_slot_tokens(self.register_token, b, s)], dim=1
        )
        tokens = torch.cat([special.to(patch_tokens.dtype), patch_tokens.reshape(b * s, p, c)], dim=1)
        n = tokens.shape[1]
        pos_frame = pos_global = None
        if self.rope is not None:  # rotation tables built once for all frame / all global blocks
            positions = patch_positions(*grid_hw, self.patch_start_idx, device=tokens.device)[None]
            top = max(grid_hw)  # patch (i, j) sits at (i + 1, j + 1)
            pos_frame = RopePositions(positions, top)
            pos_global = RopePositions(positions.repeat(1, s, 1), top)
        plan = self._merge_plan(s, p, pos_global, tokens.device)
        out: dict[int, Tensor] = {}
        last = max(keep) if keep else -1
        for i in range(self.cfg.depth):
            if i > last:
                break
            tokens = self._run(self.frame_blocks[i], tokens.reshape(b * s, n, c), pos_frame)
            frame_out = tokens.reshape(b, s, n, c)
            merge = plan if i >= self.cfg.global_merge_start else None
            tokens = self._run(self.global_blocks[i], tokens.reshape(b, s * n, c), pos_global, merge)
            if i in keep:
                out[i] = torch.cat([frame_out, tokens.reshape(b, s, n, c)], dim=-1)
        return out, self.patch_start_idx
