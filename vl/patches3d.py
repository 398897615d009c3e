"""3D patch construction (Vid-LLM §3.3, Eq. 3–4): lift each patch of ``T'_lang`` to the world.

For the patch in row ``r``, column ``c`` of the ``(H/p) × (W/p)`` grid (patch size ``p``), the
ray goes through the patch centre pixel coordinate ``(u, v) = (c·p + (p−1)/2, r·p + (p−1)/2)``
(integer pixel index = pixel centre, as ``recon.geometry``). Its depth is either the median of
the patch's valid pixels (``depth_sample='median'``; ``torch.nanmedian``, the lower median for
an even count) or the depth of the pixel ``(r·p + p//2, c·p + p//2)`` (``'center'``). A pixel is
valid when its depth is finite and > 0 and its confidence ≥ ``min_confidence``. The world point is
Eq. 3, ``P = R⁻¹(K⁻¹ [u, v, 1]ᵀ d − t)`` with world→camera ``[R | t]``; it is computed by
``recon.geometry.depth_to_world_points`` on the patch-grid depth with the intrinsics of the
patch grid (``f' = f/p``, ``c' = (c − (p−1)/2)/p``). All geometry is detached (one-way gradient:
the VL loss never reaches the reconstruction branch).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from recon.geometry import depth_to_world_points

__all__ = [
    "patch_grid_intrinsics",
    "patch_depth",
    "patch_world_points",
    "MLPPositionEmbedding",
    "SinCosPositionEmbedding",
    "build_position_embedding",
]


def patch_grid_intrinsics(intrinsics: Tensor, patch_size: int) -> Tensor:
    """Intrinsics of the patch grid: pixel ``(c, r)`` of the grid is the centre of patch ``(r, c)``.

    Args:
        intrinsics: ``[..., 3, 3]`` of the full-resolution image.
    Returns:
        ``[..., 3, 3]`` with ``fx/p, fy/p`` and ``cx' = (cx − (p−1)/2)/p``, ``cy'`` likewise.
    """
    k = intrinsics.clone()
    half = (patch_size - 1) / 2.0
    k[..., 0, 0] = intrinsics[..., 0, 0] / patch_size
    k[..., 1, 1] = intrinsics[..., 1, 1] / patch_size
    k[..., 0, 1] = intrinsics[..., 0, 1] / patch_size
    k[..., 0, 2] = (intrinsics[..., 0, 2] - half) / patch_size
    k[..., 1, 2] = (intrinsics[..., 1, 2] - half) / patch_size
    return k


def patch_depth(
    depth: Tensor, patch_size: int, mode: str = "median", confidence: Tensor | None = None, min_confidence: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Depth per patch and its validity.

    Args:
        depth: ``[B, S, H, W]`` metres (0 / non-finite = invalid); H, W multiples of ``patch_size``.
        mode: 'median' (of valid pixels) or 'center' (the pixel ``(r·p + p//2, c·p + p//2)``).
        confidence: optional ``[B, S, H, W]``; pixels below ``min_confidence`` are invalid.
    Returns:
        ``depth [B, S, H/p, W/p]`` (0 where invalid) and ``valid [B, S, H/p, W/p]`` bool.
    """
    if depth.ndim != 4:
        raise ValueError(f"patches3d: depth must be [B, S, H, W], got {tuple(depth.shape)}")
    b, s, h, w = depth.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"patches3d: depth size {h}x{w} is not a multiple of the patch size {p}")
    valid = torch.isfinite(depth) & (depth > 0)
    if confidence is not None:
        if confidence.shape != depth.shape:
            raise ValueError(
                f"patches3d: depth_conf shape {tuple(confidence.shape)} != depth shape {tuple(depth.shape)}"
            )
        valid = valid & (confidence >= min_confidence)
    hp, wp = h // p, w // p
    if mode == "center":
        d = depth[:, :, p // 2 :: p, p // 2 :: p][:, :, :hp, :wp]
        ok = valid[:, :, p // 2 :: p, p // 2 :: p][:, :, :hp, :wp]
    elif mode == "median":
        blocks = torch.where(valid, depth, torch.full_like(depth, float("nan")))
        blocks = blocks.reshape(b, s, hp, p, wp, p).permute(0, 1, 2, 4, 3, 5).reshape(b, s, hp, wp, p * p)
        d = torch.nanmedian(blocks, dim=-1).values
        ok = torch.isfinite(d)
    else:
        raise ValueError(f"vl.depth_sample = {mode!r}; expected 'median' or 'center'")
    return torch.where(ok, d, torch.zeros_like(d)), ok


@torch.no_grad()
def patch_world_points(
    depth: Tensor,
    extrinsics: Tensor,
    intrinsics: Tensor,
    patch_size: int,
    mode: str = "median",
    confidence: Tensor | None = None,
    min_confidence: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Eq. 3 for every patch: world point of the patch centre (no gradient, inputs detached).

    Args:
        depth: ``[B, S, H, W]`` metres; extrinsics ``[B, S, 3, 4]`` world→camera;
        intrinsics ``[B, S, 3, 3]`` pixels of the ``H × W`` input.
    Returns:
        ``points [B, S, P, 3]`` in the model (world) frame, zero where invalid, and
        ``valid [B, S, P]`` bool, with ``P = (H/p)·(W/p)`` in row-major patch order.
    """
    if extrinsics.shape[-2:] != (3, 4) or intrinsics.shape[-2:] != (3, 3) or extrinsics.shape[:2] != depth.shape[:2]:
        raise ValueError(
            f"patches3d: expected extrinsic [B, S, 3, 4] and intrinsic [B, S, 3, 3] matching depth {tuple(depth.shape)}, "
            f"got {tuple(extrinsics.shape)} and {tuple(intrinsics.shape)}"
        )
    depth = depth.detach().float()
    conf = None if confidence is None else confidence.detach().float()
    d, ok = patch_depth(depth, patch_size, mode, conf, min_confidence)
    k = patch_grid_intrinsics(intrinsics.detach().float(), patch_size)
    pts = depth_to_world_points(d, extrinsics.detach().float(), k)
    ok = ok & torch.isfinite(pts).all(-1)
    pts = torch.where(ok[..., None], pts, torch.zeros_like(pts))
    b, s = d.shape[:2]
    return pts.reshape(b, s, -1, 3), ok.reshape(b, s, -1)


class MLPPositionEmbedding(nn.Module):
    """Paper Eq. 4's ``P'_v = MLP(P_v)``: ``Linear(3, C) → GELU → Linear(C, C)``, ``[..., 3] → [..., C]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, points: Tensor) -> Tensor:
        """``[..., 3]`` metres → ``[..., C]``."""
        return self.fc2(self.act(self.fc1(points)))


class SinCosPositionEmbedding(nn.Module):
    """Fixed sinusoidal 3D embedding: per axis ``F = ⌊C/6⌋`` frequencies, ``[sin(ω x), cos(ω x)]``.

    Wavelengths ``λ_k`` are geometric from ``min_wavelength`` to ``max_wavelength`` metres,
    ``ω_k = 2π/λ_k``; channel layout ``[x: sin F, cos F | y: … | z: …]``, zero-padded to C.
    """

    def __init__(self, dim: int, min_wavelength: float = 0.05, max_wavelength: float = 20.0) -> None:
        super().__init__()
        self.dim = dim
        nfreq = dim // 6
        if nfreq < 1:
            raise ValueError(f"vl.pos_embed = 'sincos' needs a token width >= 6, got {dim}")
        k = torch.arange(nfreq, dtype=torch.float64) / max(nfreq - 1, 1)
        wavelengths = min_wavelength * (max_wavelength / min_wavelength) ** k
        self.register_buffer("omega", (2 * math.pi / wavelengths).float(), persistent=False)

    def forward(self, points: Tensor) -> Tensor:
        """``[..., 3]`` metres → ``[..., C]``."""
        ang = points[..., :, None] * self.omega  # [..., 3, F]
        emb = torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)  # [..., 6F]
        pad = self.dim - emb.shape[-1]
        return torch.nn.functional.pad(emb, (0, pad)) if pad else emb


def build_position_embedding(kind: str, dim: int) -> nn.Module:
    """'mlp' → :class:`MLPPositionEmbedding`; 'sincos' → :class:`SinCosPositionEmbedding`."""
    if kind == "mlp":
        return MLPPositionEmbedding(dim)
    if kind == "sincos":
        return SinCosPositionEmbedding(dim)
    raise ValueError(f"vl.pos_embed = {kind!r}; expected 'mlp' or 'sincos'")
