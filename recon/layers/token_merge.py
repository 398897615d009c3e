"""Training-free token merging for the aggregator's global attention (ToMe / FastVGGT style).

A global block attends over ``[B, S·N, C]`` (``N = 1 + R + P``: camera, registers, patches per frame).
Merging shortens the sequence that enters attention; the residual stream stays full size:

* **destinations** — every token of frame 0, the camera and register tokens of every frame, and
  ``P − ⌊ρ·P⌋`` patches of every other frame at evenly spaced grid indices (:func:`kept_patches`);
* **sources** — the other ``⌊ρ·P⌋`` patches of frames ``≥ 1``; each is averaged into its most similar
  destination *patch* token (cosine similarity of the block's normalised input, argmax over all
  destination patches of all frames, computed in blocks of source rows: :func:`match_sources`).
  Camera and register tokens never absorb a source, so the tokens the camera head reads stay exact;
* attention runs on the merged sequence (destinations in their original order, each at its own RoPE
  position), optionally with ToMe's proportional attention: ``log(size)`` added to the logits of every
  key, so that a key standing for ``n`` tokens weighs as ``n`` keys;
* **unmerge** copies each destination's attention output back to the sources merged into it.

With proportional attention, merged attention equals full attention over the sequence in which every
token of a group is replaced by the group's mean (what the tests check on exact duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.layers.rope import RopePositions

MATCH_BLOCK_ELEMENTS = 1 << 22
"""Similarity entries per block of :func:`match_sources` (``rows × destinations``; 16 MiB in float32)."""


def kept_patches(num_patches: int, ratio: float) -> Tensor:
    """Indices ``[K]`` (long, increasing) of the patches kept as destinations in frames ``≥ 1``.

    ``K = P − ⌊ratio·P⌋`` patches at evenly spaced row-major indices ``⌊(j + ½)·P / K⌋`` (a fixed stride
    over the grid, as FastVGGT's per-cell destinations), ``K ≥ 1`` for ``ratio < 1``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"token merge: ratio must be in [0, 1), got {ratio!r}")
    keep = num_patches - int(ratio * num_patches)
    return ((torch.arange(keep, dtype=torch.float64) + 0.5) * (num_patches / keep)).floor().long()


@dataclass(frozen=True)
class MergePlan:
    """Which tokens of a global sequence ``[B, S·N, C]`` are destinations; depends only on the sizes.

    Built once per forward (:func:`merge_plan`) and shared by every merging global block.

    Attributes:
        length: full sequence length ``L = S·N``.
        dst_index: ``[M]`` long, increasing: the destinations' indices in the full sequence (the merged
            sequence is ``x[:, dst_index]`` before averaging).
        absorb: ``[D]`` long: positions within the merged sequence of the destination *patch* tokens
            (those a source may merge into).
        src_index: ``[T]`` long: the sources' indices in the full sequence (``T = L − M``).
        positions: RoPE positions of the merged sequence ``[1, M, 2]`` (each destination's own), or None.
        proportional: add ``log(group size)`` to the attention logits of the merged keys.
    """

    length: int
    dst_index: Tensor
    absorb: Tensor
    src_index: Tensor
    positions: RopePositions | None
    proportional: bool


def merge_plan(
    frames: int,
    num_special: int,
    num_patches: int,
    ratio: float,
    positions: Tensor | None = None,
    proportional: bool = True,
    device: torch.device | str | None = None,
    max_position: int | None = None,
) -> MergePlan:
    """The destinations/sources of ``frames`` frames of ``num_special + num_patches`` tokens each.

    Args:
        frames: S.
        num_special: camera + register tokens at the start of each frame (``1 + R``).
        num_patches: P.
        ratio: fraction of the patches of frames ``≥ 1`` merged away, in ``[0, 1)``.
        positions: RoPE positions of the full sequence ``[1, S·N, 2]`` (long), or None without RoPE.
        proportional: see :class:`MergePlan`.
        device: where the index tensors live.
        max_position: the largest coordinate in ``positions`` when known (see :class:`RopePositions`).
    """
    n = num_special + num_patches
    is_dst = torch.zeros(frames, n, dtype=torch.bool)
    is_dst[0] = True
    is_dst[:, :num_special] = True
    is_dst[:, num_special + kept_patches(num_patches, ratio)] = True
    is_patch = torch.zeros(frames, n, dtype=torch.bool)
    is_patch[:, num_special:] = True
    is_dst, is_patch = is_dst.flatten(), is_patch.flatten()
    dst_index = is_dst.nonzero().squeeze(1)
    absorb = is_patch[dst_index].nonzero().squeeze(1)
    src_index = (~is_dst).nonzero().squeeze(1)
    rope = None
    if positions is not None:
        if positions.shape[-2] != frames * n:
            raise ValueError(f"token merge: positions cover {positions.shape[-2]} tokens, expected S·N = {frames * n}")
        rope = RopePositions(positions[:, dst_index.to(positions.device)], max_position)
    return MergePlan(
        length=frames * n,
        dst_index=dst_index.to(device),
        absorb=absorb.to(device),
        src_index=src_index.to(device),
        positions=rope,
        proportional=proportional,
    )


def match_sources(src: Tensor, dst: Tensor, block_elements: int = MATCH_BLOCK_ELEMENTS) -> Tensor:
    """Most similar destination (cosine) of every source: ``src [B, T, C]``, ``dst [B, D, C]`` → ``[B, T]`` long.

    The similarity is computed for blocks of ``max(1, block_elements // D)`` source rows at a time, so
    the peak extra memory is ``O(block × D)``, never ``T × D``. Ties go to the lower destination index.
    """
    if dst.shape[1] == 0:
        raise ValueError("token merge: no destination patch token to merge into")
    a = F.normalize(src, dim=-1)
    b = F.normalize(dst, dim=-1).transpose(1, 2)
    rows = max(1, block_elements // dst.shape[1])
    out = torch.empty(src.shape[:2], dtype=torch.long, device=src.device)
    for start in range(0, src.shape[1], rows):
        out[:, start : start + rows] = torch.bmm(a[:, start : start + rows], b).argmax(dim=-1)
    return out


class TokenMerge:
    """The merge of one global block: the plan plus every source's destination (built by :func:`match`).

    Attributes:
        plan: the :class:`MergePlan`.
        assign: ``[B, T]`` long: the merged-sequence index of every source's destination.
        sizes: ``[B, M]`` float: tokens per merged token (1 + the sources merged into it).
    """

    def __init__(self, plan: MergePlan, assign: Tensor, dtype: torch.dtype) -> None:
        self.plan = plan
        self.assign = assign
        b, m = assign.shape[0], plan.dst_index.numel()
        self.sizes = torch.ones(b, m, dtype=dtype, device=assign.device).scatter_add_(
            1, assign, torch.ones(assign.shape, dtype=dtype, device=assign.device)
        )

    def merge(self, x: Tensor) -> Tensor:
        """``x [B, L, C]`` → ``[B, M, C]``: each destination averaged with the sources assigned to it."""
        c = x.shape[-1]
        summed = x[:, self.plan.dst_index].scatter_add_(
            1, self.assign[..., None].expand(-1, -1, c), x[:, self.plan.src_index]
        )
        return summed / self.sizes[..., None]

    def unmerge(self, y: Tensor) -> Tensor:
        """``y [B, M, C]`` → ``[B, L, C]``: every token gets its destination's row."""
        b, m, c = y.shape
        index = torch.empty(b, self.plan.length, dtype=torch.long, device=y.device)
        index[:, self.plan.dst_index] = torch.arange(m, device=y.device)
        index[:, self.plan.src_index] = self.assign
        return y.gather(1, index[..., None].expand(-1, -1, c))

    def attention_bias(self) -> Tensor | None:
        """``[B, 1, 1, M]`` additive logit bias ``log(size)`` of the keys (proportional attention), or None."""
        return self.sizes.log()[:, None, None, :] if self.plan.proportional else None


def match(plan: MergePlan, metric: Tensor, block_elements: int = MATCH_BLOCK_ELEMENTS) -> TokenMerge:
    """Assign every source of ``plan`` to its most similar destination patch: ``metric [B, L, C]`` (the
    block's normalised input) → :class:`TokenMerge`."""
    if metric.shape[1] != plan.length:
        raise ValueError(f"token merge: sequence has {metric.shape[1]} tokens, the plan expects {plan.length}")
    with torch.no_grad():
        nearest = match_sources(
            metric[:, plan.src_index], metric[:, plan.dst_index[plan.absorb]], block_elements=block_elements
        )
        assign = plan.absorb[nearest]
    return TokenMerge(plan, assign, metric.dtype)
