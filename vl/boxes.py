"""Axis-aligned 3D box losses and matching: 3D GIoU and Hungarian assignment."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from recon.geometry import aabb_intersection, box_volume

__all__ = ["giou_3d", "giou_3d_pairwise", "hungarian_match"]


def giou_3d(a: Tensor, b: Tensor, eps: float = 1e-9) -> Tensor:
    """Generalised IoU of broadcastable axis-aligned boxes ``[..., 6]`` (``[cx,cy,cz,dx,dy,dz]``).

    ``GIoU = IoU − (V_C − U) / V_C`` with ``U = V_a + V_b − I`` and ``V_C`` the volume of the
    smallest axis-aligned box enclosing both; in ``(−1, 1]``, 1 for identical boxes, < 0 for
    disjoint boxes.
    """
    inter = aabb_intersection(a, b)
    union = box_volume(a) + box_volume(b) - inter
    lo = torch.minimum(a[..., :3] - a[..., 3:6] / 2, b[..., :3] - b[..., 3:6] / 2)
    hi = torch.maximum(a[..., :3] + a[..., 3:6] / 2, b[..., :3] + b[..., 3:6] / 2)
    enclose = (hi - lo).clamp_min(0).prod(-1)
    return inter / union.clamp_min(eps) - (enclose - union) / enclose.clamp_min(eps)


def giou_3d_pairwise(a: Tensor, b: Tensor) -> Tensor:
    """GIoU matrix ``[N, M]`` of boxes ``a [N, 6]`` and ``b [M, 6]``."""
    return giou_3d(a[:, None, :], b[None, :, :])


def hungarian_match(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-cost one-to-one assignment (scipy ``linear_sum_assignment``).

    Args:
        cost: ``[N, M]`` (N predictions × M targets; either may be 0).
    Returns:
        ``(pred_idx [K], target_idx [K])`` long tensors on ``cost.device``, ``K = min(N, M)``,
        sorted by prediction index.
    """
    if cost.ndim != 2:
        raise ValueError(f"hungarian_match: cost must be [N, M], got {tuple(cost.shape)}")
    if cost.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=cost.device)
        return empty, empty.clone()
    c = cost.detach().double().cpu().numpy()
    c = np.where(np.isfinite(c), c, 1e12)
    rows, cols = linear_sum_assignment(c)
    return torch.as_tensor(rows, dtype=torch.long, device=cost.device), torch.as_tensor(
        cols, dtype=torch.long, device=cost.device
    )
