"""Token budget: deterministic voxel pooling of 3D patch tokens with a cap.

Tokens whose points fall into the same voxel (edge ``voxel_size`` metres, model frame,
``floor(p / voxel_size)``) are merged into one token holding the **mean** of their features and of
their positions. Only valid tokens take part. If a clip has more voxels than ``max_tokens``, the
most-populated voxels are kept (ties: smaller voxel key first). The kept voxels are emitted in
lexicographic order of their integer voxel key ``(ix, iy, iz)``, so the result is a pure function
of the input (segment sums run in float32 on sorted segments, no atomics). Vectorised over the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["voxel_pool"]


def voxel_pool(
    features: Tensor, points: Tensor, valid: Tensor, voxel_size: float, max_tokens: int
) -> dict[str, Tensor]:
    """Pool tokens per voxel and cap their number.

    Args:
        features: ``[B, N, C]``; points: ``[B, N, 3]`` metres (model frame); valid: ``[B, N]`` bool.
        voxel_size: voxel edge in metres; max_tokens: cap M_max per sample.
    Returns:
        dict with ``features [B, M, C]``, ``points [B, M, 3]``, ``mask [B, M]`` bool (True = real
        token), ``counts [B, M]`` (tokens merged per voxel, 0 for padding), where
        ``M = max_b min(#voxels_b, max_tokens)`` (at least 1 so shapes stay non-empty).
    """
    if features.ndim != 3 or points.shape != features.shape[:2] + (3,) or valid.shape != features.shape[:2]:
        raise ValueError(
            f"voxel_pool: expected features [B, N, C], points [B, N, 3], valid [B, N]; got "
            f"{tuple(features.shape)}, {tuple(points.shape)}, {tuple(valid.shape)}"
        )
    if voxel_size <= 0 or max_tokens <= 0:
        raise ValueError(f"voxel_pool: vl.voxel_size ({voxel_size}) and vl.max_3d_tokens ({max_tokens}) must be > 0")
    bsz, _, dim = features.shape
    device = features.device
    valid = valid & torch.isfinite(points).all(-1)
    b_idx, n_idx = valid.nonzero(as_tuple=True)  # row-major: sorted by batch, then token
    keys = torch.floor(points[b_idx, n_idx].detach().double() / voxel_size).long()
    rows = torch.cat([b_idx[:, None], keys], dim=1)  # [V_tok, 4] (b, ix, iy, iz)
    if rows.shape[0] == 0:
        return {
            "features": features.new_zeros(bsz, 1, dim),
            "points": points.new_zeros(bsz, 1, 3),
            "mask": torch.zeros(bsz, 1, dtype=torch.bool, device=device),
            "counts": torch.zeros(bsz, 1, dtype=torch.long, device=device),
        }
    uniq, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)  # lexicographic
    order = torch.argsort(inverse, stable=True)
    feat_sum = torch.segment_reduce(features[b_idx, n_idx][order].float(), "sum", lengths=counts, axis=0)
    pts_sum = torch.segment_reduce(points[b_idx, n_idx][order].detach(), "sum", lengths=counts, axis=0)
    feat_mean = feat_sum / counts[:, None].to(feat_sum.dtype)
    pts_mean = pts_sum / counts[:, None].to(pts_sum.dtype)
    vox_b = uniq[:, 0]
    nvox = uniq.shape[0]
    # rank voxels inside their sample by (-count, key order): stable sorts, least significant first
    by_count = torch.argsort(-counts, stable=True)
    ranked = by_count[torch.argsort(vox_b[by_count], stable=True)]
    first = torch.searchsorted(vox_b[ranked], torch.arange(bsz, device=device))
    rank = torch.empty(nvox, dtype=torch.long, device=device)
    rank[ranked] = torch.arange(nvox, device=device) - first[vox_b[ranked]]
    keep = rank < max_tokens
    kept = keep.nonzero(as_tuple=True)[0]  # still in lexicographic (b, key) order
    kb = vox_b[kept]
    per_sample = torch.bincount(kb, minlength=bsz)
    slot = torch.arange(kept.shape[0], device=device) - (torch.cumsum(per_sample, 0) - per_sample)[kb]
    m = max(int(per_sample.max().item()), 1)
    out_f = feat_mean.new_zeros(bsz, m, dim)
    out_p = pts_mean.new_zeros(bsz, m, 3)
    out_c = torch.zeros(bsz, m, dtype=torch.long, device=device)
    mask = torch.zeros(bsz, m, dtype=torch.bool, device=device)
    out_f = out_f.index_put((kb, slot), feat_mean[kept])
    out_p[kb, slot] = pts_mean[kept]
    out_c[kb, slot] = counts[kept]
    mask[kb, slot] = True
    return {"features": out_f.to(features.dtype), "points": out_p.to(points.dtype), "mask": mask, "counts": out_c}
