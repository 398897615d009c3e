"""Similarity transforms (Sim(3)) between the model frames of two reconstructions, and their robust estimation.

A Sim(3) ``T = (s, R, t)`` (scale ``s > 0``, rotation ``R``, translation ``t``) maps a point of frame B
to frame A:

    ``x_A = T(x_B) = s·R·x_B + t``                                                   (1)

Composition and inverse:

    ``(T₁ ∘ T₂)(x) = s₁s₂·R₁R₂·x + s₁·R₁·t₂ + t₁``                                  (2)
    ``T⁻¹ = (1/s, Rᵀ, −(1/s)·Rᵀ·t)``                                                 (3)

A camera with world→camera extrinsics ``[R_c | t_c]`` in frame B (``x_cam = R_c·x_B + t_c``) seen
from frame A, whose units are ``s`` times those of B (the camera frame is scaled with the world, so
depth becomes ``s·z``):

    ``s·x_cam = R_c·Rᵀ·x_A + (s·t_c − R_c·Rᵀ·t)``  ⇒  ``R_c' = R_c·Rᵀ``, ``t_c' = s·t_c − R_c·Rᵀ·t``,
    ``z' = s·z``                                                                       (4)

Intrinsics are unchanged. Everything is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon.geometry import umeyama

__all__ = ["Sim3", "estimate_sim3"]


@dataclass(frozen=True)
class Sim3:
    """``x_A = s·R·x_B + t`` (Eq. 1): ``scale`` ``[]``, ``rot`` ``[3, 3]``, ``trans`` ``[3]``, all float64."""

    scale: Tensor
    rot: Tensor
    trans: Tensor

    @classmethod
    def identity(cls, device: torch.device | str | None = None) -> Sim3:
        f64 = {"dtype": torch.float64, "device": device}
        return cls(torch.ones((), **f64), torch.eye(3, **f64), torch.zeros(3, **f64))

    def compose(self, other: Sim3) -> Sim3:
        """``self ∘ other`` (Eq. 2): first ``other`` (C→B), then ``self`` (B→A)."""
        return Sim3(self.scale * other.scale, self.rot @ other.rot, self.scale * (self.rot @ other.trans) + self.trans)

    def inverse(self) -> Sim3:
        """``T⁻¹`` (Eq. 3)."""
        rot_t = self.rot.T
        return Sim3(1.0 / self.scale, rot_t, -(rot_t @ self.trans) / self.scale)

    def apply(self, points: Tensor) -> Tensor:
        """Points ``[..., 3]`` of frame B → frame A (Eq. 1), in the dtype of ``points``."""
        out = self.scale * points.double() @ self.rot.T + self.trans
        return out.to(points.dtype)

    def transform_extrinsics(self, extrinsics: Tensor) -> Tensor:
        """World→camera extrinsics ``[..., 3, 4]`` of frame B → of frame A (Eq. 4), in their dtype."""
        ext = extrinsics.double()
        rot = ext[..., :3, :3] @ self.rot.T
        trans = self.scale * ext[..., :3, 3] - (rot @ self.trans[:, None])[..., 0]
        return torch.cat([rot, trans[..., None]], dim=-1).to(extrinsics.dtype)

    def transform_depth(self, depth: Tensor) -> Tensor:
        """Depth ``[..., H, W]`` of frame B's units → frame A's: ``s·z`` (Eq. 4), in its dtype."""
        return (depth.double() * self.scale).to(depth.dtype)

    def matrix(self) -> Tensor:
        """``[4, 4]`` float64 ``[[s·R, t], [0, 1]]``."""
        out = torch.eye(4, dtype=torch.float64, device=self.rot.device)
        out[:3, :3] = self.scale * self.rot
        out[:3, 3] = self.trans
        return out


@torch.no_grad()
def estimate_sim3(
    src: Tensor,
    dst: Tensor,
    weights: Tensor | None = None,
    max_points: int = 20_000,
    conf_quantile: float = 0.5,
    iterations: int = 3,
    huber: float = 2.0,
) -> Sim3:
    """Robust weighted Umeyama fit of ``dst ≈ s·R·src + t`` (Eq. 1) from corresponding points.

    1. Keep the pairs with finite coordinates and a finite, positive weight.
    2. Subsample to at most ``max_points`` pairs, evenly spaced in index order (deterministic).
    3. Drop the pairs whose weight is below the ``conf_quantile`` quantile of the kept weights.
    4. Weighted Umeyama (:func:`recon.geometry.umeyama`), then ``iterations`` rounds of iteratively
       reweighted least squares with Huber weights: residual ``r_i = ‖T(src_i) − dst_i‖``,
       ``δ = huber · median(r)``, weight ``w_i · min(1, δ / r_i)``.

    Args:
        src, dst: ``[N, 3]`` corresponding points (frame B and frame A).
        weights: ``[N]`` non-negative weights (e.g. confidences); None = uniform.
        max_points: subsampling cap (≥ 3).
        conf_quantile: in ``[0, 1)``; 0 keeps every weighted pair.
        iterations: IRLS rounds after the first fit (0 = plain weighted Umeyama).
        huber: Huber threshold in units of the median residual (> 0).
    Returns:
        :class:`Sim3` (float64) mapping ``src``'s frame to ``dst``'s.
    Raises:
        ValueError: mismatched shapes, bad settings, fewer than 3 usable pairs, or a degenerate fit.
    """
    if src.shape != dst.shape or src.ndim != 2 or src.shape[-1] != 3:
        raise ValueError(
            f"estimate_sim3: src and dst must be [N, 3] of equal shape, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    if weights is not None and weights.shape != src.shape[:1]:
        raise ValueError(f"estimate_sim3: weights must be [{src.shape[0]}], got {tuple(weights.shape)}")
    if max_points < 3 or not 0.0 <= conf_quantile < 1.0 or iterations < 0 or huber <= 0:
        raise ValueError(
            f"estimate_sim3: need max_points >= 3, 0 <= conf_quantile < 1, iterations >= 0, huber > 0; got "
            f"{max_points}, {conf_quantile}, {iterations}, {huber}"
        )
    x, y = src.double(), dst.double()
    w = torch.ones(x.shape[0], dtype=torch.float64, device=x.device) if weights is None else weights.double()
    keep = torch.isfinite(x).all(-1) & torch.isfinite(y).all(-1) & torch.isfinite(w) & (w > 0)
    idx = keep.nonzero()[:, 0]
    if idx.numel() > max_points:
        idx = idx[torch.linspace(0, idx.numel() - 1, max_points, device=idx.device).round().long()]
    x, y, w = x[idx], y[idx], w[idx]
    if conf_quantile > 0 and w.numel():
        sel = w >= torch.quantile(w, conf_quantile)
        x, y, w = x[sel], y[sel], w[sel]
    if x.shape[0] < 3:
        raise ValueError(f"estimate_sim3: {x.shape[0]} usable point pairs (finite, positive weight); need at least 3")
    scale, rot, trans = umeyama(x, y, with_scale=True, weights=w)
    for _ in range(iterations):
        resid = (scale * x @ rot.T + trans - y).norm(dim=-1)
        delta = huber * resid.median()
        if not delta > 0:  # exact fit: nothing to reweight
            break
        scale, rot, trans = umeyama(x, y, with_scale=True, weights=w * (delta / resid.clamp_min(1e-300)).clamp(max=1.0))
    if not (torch.isfinite(scale) and scale > 0 and torch.isfinite(rot).all() and torch.isfinite(trans).all()):
        raise ValueError(f"estimate_sim3: degenerate fit (scale {float(scale)}); the points may be collinear")
    return Sim3(scale, rot, trans)
