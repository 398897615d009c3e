"""Real-scale alignment of the relative reconstruction to the metric depth (paper §3.2).

Per frame ``j``, the confidence-weighted least-squares scale between the relative depth ``r``
(DPT head) and the metric depth ``m`` (Metric Depth Model) over the valid pixels ``Ω_j``

    ``s_j = argmin_s Σ_{i∈Ω_j} w_i (s·r_i − m_i)² = Σ w·r·m / Σ w·r²``

with weights ``w`` = the DPT confidence. The scene scale is the median of ``s_j`` over (up to)
16 frames sampled deterministically from a seed (paper: 16 randomly sampled images); for an even
number of usable frames the median is the mean of the two middle values. Everything is computed in
float64 without gradient.

Valid pixels: finite ``r, m, w`` with ``r > 0``, ``m > 0``, ``w > 0`` (and inside the optional
mask). A frame is degenerate (skipped, its scale NaN) when it has fewer than ``min_valid_pixels``
valid pixels, ``Σ w·r² ≈ 0``, or a non-finite / non-positive scale. When no sampled frame of a
clip is usable, the clip's scale is 1 and its ``valid`` flag is False.

The scale multiplies depth, camera translations (world→camera ``t``: scaling the world by ``s``
maps ``x_c = R x_w + t`` to ``s·x_c = R (s·x_w) + s·t``) and world points; rotations and
intrinsics are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ScaleAlignment", "sample_alignment_frames", "per_frame_scales", "real_scale_alignment", "apply_scene_scale"]


@dataclass
class ScaleAlignment:
    """Result of :func:`real_scale_alignment` (all tensors without gradient).

    Attributes:
        scale: ``[B]`` float64 scene scales (1 where ``valid`` is False).
        frame_scales: ``[B, S]`` float64 per-frame scales; NaN for degenerate frames.
        frame_valid: ``[B, S]`` bool, the frame's scale is usable.
        sampled: ``[n]`` int64 indices of the frames whose median gives ``scale``.
        valid: ``[B]`` bool, at least one sampled frame was usable.
    """

    scale: Tensor
    frame_scales: Tensor
    frame_valid: Tensor
    sampled: Tensor
    valid: Tensor


def sample_alignment_frames(num_frames: int, num_samples: int = 16, seed: int = 0) -> Tensor:
    """Deterministic frame sample: all frames if ``num_frames <= num_samples``, else a seeded random subset.

    Returns:
        ``[min(num_frames, num_samples)]`` sorted int64 frame indices (independent of the global RNG).
    """
    if num_frames <= 0 or num_samples <= 0:
        raise ValueError(
            f"sample_alignment_frames needs num_frames > 0 and num_samples > 0, got {num_frames}, {num_samples}"
        )
    if num_frames <= num_samples:
        return torch.arange(num_frames)
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_frames, generator=generator)[:num_samples].sort().values


@torch.no_grad()
def per_frame_scales(
    rel_depth: Tensor,
    metric_depth: Tensor,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
    min_valid_pixels: int = 16,
) -> tuple[Tensor, Tensor]:
    """Weighted LS scale per frame, ``s = Σ w·r·m / Σ w·r²`` over valid pixels (float64).

    Args:
        rel_depth, metric_depth: ``[..., H, W]``.
        weights: ``[..., H, W]`` confidences (None = uniform).
        mask: optional ``[..., H, W]`` bool of pixels allowed to vote.
        min_valid_pixels: frames with fewer valid pixels are degenerate.
    Returns:
        scales ``[...]`` float64 (NaN where degenerate) and valid ``[...]`` bool.
    """
    if rel_depth.shape != metric_depth.shape:
        raise ValueError(
            f"alignment: rel_depth {tuple(rel_depth.shape)} and metric_depth {tuple(metric_depth.shape)} differ in shape"
        )
    r = rel_depth.detach().double()
    m = metric_depth.detach().double()
    w = torch.ones_like(r) if weights is None else weights.detach().double()
    if w.shape != r.shape:
        raise ValueError(f"alignment: weights {tuple(w.shape)} must match rel_depth {tuple(r.shape)}")
    valid = torch.isfinite(r) & torch.isfinite(m) & torch.isfinite(w) & (r > 0) & (m > 0) & (w > 0)
    if mask is not None:
        if mask.shape != r.shape:
            raise ValueError(f"alignment: mask {tuple(mask.shape)} must match rel_depth {tuple(r.shape)}")
        valid = valid & mask.bool()
    zero = torch.zeros((), dtype=torch.float64, device=r.device)
    r = torch.where(valid, r, zero)
    m = torch.where(valid, m, zero)
    w = torch.where(valid, w, zero)
    num = (w * r * m).sum(dim=(-2, -1))
    den = (w * r * r).sum(dim=(-2, -1))
    count = valid.sum(dim=(-2, -1))
    scale = num / den.clamp_min(torch.finfo(torch.float64).tiny)
    ok = (count >= min_valid_pixels) & (den > 1e-300) & torch.isfinite(scale) & (scale > 0)
    return torch.where(ok, scale, torch.full_like(scale, float("nan"))), ok


def _nanmedian_mean_of_middle(values: Tensor) -> Tensor:
    """Median over dim 1 ignoring NaN, the mean of the two middle values for an even count (NaN
    where a row has no finite value) — ``torch.nanquantile(values, 0.5, dim=1)`` computed with a
    sort and a gather only, so nothing waits on the device."""
    ordered = values.sort(dim=1).values  # NaN sort last
    count = (~torch.isnan(values)).sum(dim=1, keepdim=True)
    low = ordered.gather(1, ((count - 1).clamp_min(0)) // 2)
    high = ordered.gather(1, (count // 2).clamp(max=values.shape[1] - 1))
    median = torch.lerp(low, high, 0.5).squeeze(1)
    return torch.where(count.squeeze(1) > 0, median, torch.full_like(median, float("nan")))


@torch.no_grad()
def real_scale_alignment(
    rel_depth: Tensor,
    metric_depth: Tensor,
    confidence: Tensor | None = None,
    mask: Tensor | None = None,
    num_frames: int = 16,
    seed: int = 0,
    min_valid_pixels: int = 16,
) -> ScaleAlignment:
    """Scene scale from relative to metric depth (median of per-frame weighted LS scales).

    Args:
        rel_depth: ``[B, S, H, W]`` relative depth of the DPT head.
        metric_depth: ``[B, S, H, W]`` metric depth of the Metric Depth Model.
        confidence: ``[B, S, H, W]`` DPT confidence used as weights (None = uniform).
        mask: optional ``[B, S, H, W]`` bool of pixels allowed to vote.
        num_frames: frames sampled per clip (``AlignmentConfig.num_frames``).
        seed: sampling seed (``AlignmentConfig.seed``).
        min_valid_pixels: degenerate-frame threshold (``AlignmentConfig.min_valid_pixels``).
    Returns:
        :class:`ScaleAlignment`.
    """
    if rel_depth.ndim != 4:
        raise ValueError(f"alignment: rel_depth must be [B, S, H, W], got shape {tuple(rel_depth.shape)}")
    frame_scales, frame_valid = per_frame_scales(rel_depth, metric_depth, confidence, mask, min_valid_pixels)
    frames = rel_depth.shape[1]
    if frames <= num_frames:  # every frame: no index tensor to copy to the device
        sampled = torch.arange(frames, device=rel_depth.device)
        picked = frame_scales
    else:
        sampled = sample_alignment_frames(frames, num_frames, seed).to(rel_depth.device, non_blocking=True)
        picked = frame_scales.index_select(1, sampled)
    valid = torch.isfinite(picked).any(dim=1)
    median = _nanmedian_mean_of_middle(picked)
    scale = torch.where(valid, median, torch.ones_like(median))
    return ScaleAlignment(scale=scale, frame_scales=frame_scales, frame_valid=frame_valid, sampled=sampled, valid=valid)


def apply_scene_scale(
    scale: Tensor,
    depth: Tensor | None = None,
    extrinsics: Tensor | None = None,
    pose_enc: Tensor | None = None,
    world_points: Tensor | None = None,
) -> dict[str, Tensor]:
    """Bring a reconstruction to metric units with a per-clip scale (the scale carries no gradient).

    Args:
        scale: ``[B]`` scene scales.
        depth: ``[B, S, H, W]``; extrinsics ``[B, S, 3, 4]`` (world→camera; only ``t`` scales);
        pose_enc: ``[B, S, 9]`` (only ``t`` scales); world_points ``[B, S, H, W, 3]``.
    Returns:
        dict with the scaled versions of the given inputs (same keys as the argument names), in
        each input's dtype.
    """
    scale = scale.detach()
    out: dict[str, Tensor] = {}
    if depth is not None:
        out["depth"] = depth * scale.to(depth.dtype).view(-1, 1, 1, 1)
    if world_points is not None:
        out["world_points"] = world_points * scale.to(world_points.dtype).view(-1, 1, 1, 1, 1)
    if extrinsics is not None:
        s = scale.to(extrinsics.dtype).view(-1, 1, 1)
        out["extrinsics"] = torch.cat([extrinsics[..., :3], extrinsics[..., 3:4] * s[..., None]], dim=-1)
    if pose_enc is not None:
        s = scale.to(pose_enc.dtype).view(-1, 1, 1)
        out["pose_enc"] = torch.cat([pose_enc[..., :3] * s, pose_enc[..., 3:]], dim=-1)
    return out
