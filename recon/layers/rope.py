"""2D rotary position embedding (VGGT form) and the per-frame token positions.

The head dimension ``D`` is split in halves: the first half is rotated by the token's row ``y``,
the second by its column ``x``. Each half (size ``D/2``) uses the rotate-half form with
``inv_freq_k = base^(-2k/(D/2))`` for ``k < D/4`` and the angle table duplicated over the half.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def patch_positions(grid_h: int, grid_w: int, num_special: int, device=None) -> Tensor:
    """Integer (y, x) positions of one frame's tokens ``[num_special + h·w, 2]``.

    Special tokens (camera, registers) sit at (0, 0); patch ``(i, j)`` of the row-major grid sits
    at ``(i + 1, j + 1)`` (VGGT's offset that keeps patches apart from the special tokens).
    """
    ys = torch.arange(grid_h, device=device)
    xs = torch.arange(grid_w, device=device)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2) + 1
    special = torch.zeros(num_special, 2, dtype=grid.dtype, device=device)
    return torch.cat([special, grid], dim=0)


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotaryEmbedding2D(nn.Module):
    """Apply 2D RoPE to ``[B, heads, N, D]`` given integer positions ``[B or 1, N, 2]`` (y, x)."""

    def __init__(self, base: float = 100.0) -> None:
        super().__init__()
        if base <= 0:
            raise ValueError(f"RotaryEmbedding2D: base frequency must be > 0, got {base}")
        self.base = float(base)

    def tables(self, half_dim: int, max_pos: int, device, dtype) -> tuple[Tensor, Tensor]:
        """cos/sin tables ``[max_pos, half_dim]`` for one axis."""
        if half_dim % 2:
            raise ValueError(f"RotaryEmbedding2D: head_dim must be divisible by 4, got half {half_dim}")
        inv_freq = 1.0 / (self.base ** (torch.arange(0, half_dim, 2, device=device).float() / half_dim))
        angles = torch.arange(max_pos, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1).to(dtype)
        return angles.cos(), angles.sin()

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """x ``[B, heads, N, D]``; positions ``[B, N, 2]`` (long) → rotated x, same shape."""
        half = x.shape[-1] // 2
        cos, sin = self.tables(half, int(positions.max()) + 1, x.device, x.dtype)
        out = []
        for axis, part in enumerate((x[..., :half], x[..., half:])):
            idx = positions[..., axis]
            c = cos[idx][:, None]
            s = sin[idx][:, None]
            out.append(part * c + _rotate_half(part) * s)
        return torch.cat(out, dim=-1)
