"""Sinusoidal UV position embedding of VGGT's DPT head (aspect-ratio aware, scaled by 0.1).

The scaled embedding depends only on the map size, channels, aspect ratio, dtype and device, so
:func:`add_uv_embedding` reads it from a small cache (:func:`scaled_uv_embedding`) instead of
evaluating ``h·w·C`` float64 sines and cosines on every call (the DPT head adds it five times per
forward, once at full resolution).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


def uv_grid(width: int, height: int, aspect_ratio: float, device=None, dtype=torch.float32) -> Tensor:
    """Normalised (u, v) cell coordinates ``[height, width, 2]``.

    With ``a = aspect_ratio`` the grid spans ``±a/√(a²+1)·(w−1)/w`` in u and ``±1/√(a²+1)·(h−1)/h`` in v.
    """
    diag = math.sqrt(aspect_ratio**2 + 1.0)
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=device, dtype=dtype)
    v = torch.linspace(
        -span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=device, dtype=dtype
    )
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack((uu, vv), dim=-1)


def _sincos(pos: Tensor, dim: int, omega_0: float) -> Tensor:
    """``[M] → [M, dim]`` as ``[sin(p·ω), cos(p·ω)]``, ``ω_k = omega_0^(−k/(dim/2))``, float64."""
    k = torch.arange(dim // 2, dtype=torch.float64, device=pos.device)
    omega = 1.0 / omega_0 ** (k / (dim / 2.0))
    angles = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def uv_position_embedding(
    height: int, width: int, channels: int, aspect_ratio: float, device=None, omega_0: float = 100.0
) -> Tensor:
    """The UV embedding ``[channels, height, width]`` (first half embeds u, second half v; unscaled)."""
    if channels % 4:
        raise ValueError(f"uv_position_embedding: channels must be divisible by 4, got {channels}")
    grid = uv_grid(width, height, aspect_ratio, device=device).reshape(-1, 2)
    emb = torch.cat([_sincos(grid[:, 0], channels // 2, omega_0), _sincos(grid[:, 1], channels // 2, omega_0)], dim=-1)
    return emb.reshape(height, width, channels).permute(2, 0, 1)


@functools.lru_cache(maxsize=16)
def scaled_uv_embedding(
    height: int,
    width: int,
    channels: int,
    aspect_ratio: float,
    ratio: float,
    dtype: torch.dtype,
    device: torch.device,
    channels_last: bool = False,
) -> Tensor:
    """``ratio · UV embedding`` as ``[1, channels, height, width]`` in ``dtype`` on ``device`` (cached).

    The values are exactly those of ``ratio * uv_position_embedding(...).to(dtype)``; ``channels_last``
    only picks the memory layout (the one of the map it is added to, so the addition streams both).
    The returned tensor is shared between calls: never modify it in place.
    """
    emb = ratio * uv_position_embedding(height, width, channels, aspect_ratio, device=device).to(dtype)[None]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return emb.contiguous(memory_format=fmt)


def add_uv_embedding(x: Tensor, image_hw: tuple[int, int], ratio: float = 0.1, inplace: bool = False) -> Tensor:
    """``x [N, C, h, w] + ratio · UV embedding`` for an image of size ``image_hw`` (H, W).

    ``inplace`` adds into ``x`` (for a fresh map that nothing else holds; saves one map of memory).
    """
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    # under torch.compile the cache is bypassed (traced once and folded into the graph) instead of warned about
    embedding = scaled_uv_embedding.__wrapped__ if torch.compiler.is_compiling() else scaled_uv_embedding
    emb = embedding(
        x.shape[-2], x.shape[-1], x.shape[1], image_hw[1] / image_hw[0], ratio, x.dtype, x.device, channels_last
    )
    return x.add_(emb) if inplace else x + emb
