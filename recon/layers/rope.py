"""2D rotary position embedding (VGGT form) and the per-frame token positions.

The head dimension ``D`` is split in halves: the first half is rotated by the token's row ``y``,
the second by its column ``x``. Each half (size ``D/2``) uses the rotate-half form with
``inv_freq_k = base^(-2k/(D/2))`` for ``k < D/4`` and the angle table duplicated over the half.

The rotation of every half is ``x·cos + rotate_half(x)·sin``. :meth:`RotaryEmbedding2D.tables`
gathers the cos/sin rows of a position list once into full-width tables (:class:`RopeTables`,
the sign of ``rotate_half`` folded into the sine), and :class:`RopePositions` keeps them per
(head width, dtype, device), so a forward that runs many attention layers on the same positions
builds them once (the aggregator does, for its frame and its global positions) and each layer's
q and k are rotated with one multiply-add and one channel permutation. The values are exactly
those of the per-call rotation.
"""

from __future__ import annotations

from typing import NamedTuple

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


class RopeTables(NamedTuple):
    """Gathered rotation tables of one position list, broadcastable to ``[B, heads, N, D]``.

    ``cos [B or 1, 1, N, D]`` is ``cat(cos_y, cos_x)``; ``sin [B or 1, 1, N, D]`` is
    ``cat(sign·sin_y, sign·sin_x)`` with ``sign = −1`` on the first quarter of each half (the
    ``rotate_half`` negation), so that ``rotate(x) = x·cos + swap(x)·sin`` where ``swap`` exchanges
    the two quarters of each half.
    """

    cos: Tensor
    sin: Tensor


class RopePositions:
    """Token positions ``[B or 1, N, 2]`` (long) with their :class:`RopeTables` cached per
    (RoPE base, head width, dtype, device); pass it wherever positions are accepted."""

    def __init__(self, positions: Tensor, max_position: int | None = None) -> None:
        """``max_position``: the largest coordinate in ``positions`` when the caller knows it (the patch grid's
        larger side); it saves reading it back from the tensor (a device sync, and a graph break under
        ``torch.compile``). The tables are the same either way."""
        self.positions = positions
        self.max_position = max_position
        self._tables: dict[tuple, RopeTables] = {}

    def tables(self, rope: RotaryEmbedding2D, head_dim: int, device, dtype) -> RopeTables:
        key = (rope.base, head_dim, dtype, str(device))
        if key not in self._tables:
            self._tables[key] = rope.tables(self.positions, head_dim, device, dtype, self.max_position)
        return self._tables[key]


def _swap_quarters(x: Tensor) -> Tensor:
    """``[..., D]`` → the quarters ``(q1, q0, q3, q2)``: rotate_half of both halves without the sign."""
    q = x.shape[-1] // 4
    return torch.cat((x[..., q : 2 * q], x[..., :q], x[..., 3 * q :], x[..., 2 * q : 3 * q]), dim=-1)


class RotaryEmbedding2D(nn.Module):
    """Apply 2D RoPE to ``[B, heads, N, D]`` given integer positions ``[B or 1, N, 2]`` (y, x)."""

    def __init__(self, base: float = 100.0) -> None:
        super().__init__()
        if base <= 0:
            raise ValueError(f"RotaryEmbedding2D: base frequency must be > 0, got {base}")
        self.base = float(base)

    def axis_tables(self, half_dim: int, max_pos: int, device, dtype) -> tuple[Tensor, Tensor]:
        """cos/sin tables ``[max_pos, half_dim]`` for one axis (rows = positions 0 … max_pos − 1)."""
        if half_dim % 2:
            raise ValueError(f"RotaryEmbedding2D: head_dim must be divisible by 4, got half {half_dim}")
        inv_freq = 1.0 / (self.base ** (torch.arange(0, half_dim, 2, device=device).float() / half_dim))
        angles = torch.arange(max_pos, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1).to(dtype)
        return angles.cos(), angles.sin()

    def tables(self, positions: Tensor, head_dim: int, device, dtype, max_position: int | None = None) -> RopeTables:
        """Positions ``[B or 1, N, 2]`` (long) → :class:`RopeTables` for ``head_dim``-wide heads.

        ``max_position``: an upper bound of ``positions`` (default: read from the tensor); the per-axis
        tables get ``max_position + 1`` rows, and only the rows of ``positions`` are gathered."""
        half = head_dim // 2
        max_position = int(positions.max()) if max_position is None else max_position
        cos, sin = self.axis_tables(half, max_position + 1, device, dtype)
        sign = torch.ones(half, device=device, dtype=dtype)
        sign[: half // 2] = -1.0
        cos_full = torch.cat([cos[positions[..., axis]] for axis in range(2)], dim=-1)[:, None]
        sin_full = torch.cat([sin[positions[..., axis]] * sign for axis in range(2)], dim=-1)[:, None]
        return RopeTables(cos_full, sin_full)

    @staticmethod
    def apply(x: Tensor, tables: RopeTables) -> Tensor:
        """Rotate ``x [..., N, D]`` with prepared tables: ``x·cos + swap(x)·sin``, same shape."""
        return x * tables.cos + _swap_quarters(x) * tables.sin

    def prepare(self, positions: Tensor | RopePositions, head_dim: int, device, dtype) -> RopeTables:
        """Tables for ``positions`` (plain ``[B or 1, N, 2]`` or cached :class:`RopePositions`)."""
        if isinstance(positions, RopePositions):
            return positions.tables(self, head_dim, device, dtype)
        return self.tables(positions, head_dim, device, dtype)

    def forward(self, x: Tensor, positions: Tensor | RopePositions) -> Tensor:
        """x ``[B, heads, N, D]``; positions ``[B, N, 2]`` (long) or :class:`RopePositions` → rotated x, same shape."""
        return self.apply(x, self.prepare(positions, x.shape[-1], x.device, x.dtype))
