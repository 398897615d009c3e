"""Patch-grid relative pose: an optional tiny-scale aid to the VGGT camera head (``recon.camera_head.relative_pose``).

The VGGT camera head reads only each frame's camera token. Trained from scratch at tiny scale, that
token does not pick up the direction of the camera's motion. This module compares frame ``k``'s
patch grid with frame 0's directly and hands the result to the camera head as an additive offset
of its (normalised) camera token; the camera head stays the pose output.

For the last aggregator layer's patch tokens ``X [B, S, P, D]`` (``P = h·w``, ``D = 2C``)::

    Z_k  = pool_g(W_r · LN(X_k)) [− mean_j pool_g(W_r · LN(X_j))]   [B, S, c, g, g] (c channels, g×g pooled grid)
    C_k  = corr(Z_k, Z_0)                              [B, S, (2g−1)²] (with ``correlation``; else empty)
    H_k  = MLP([vec Z_k ; vec Z_0 ; C_k])              [B, S, hidden]
    δ_k  = W_t · H_k + b_t                             [B, S, D]       (W_t, b_t zero-initialised)
    p̂_k  = W_p · H_k + b_p                             [B, S, 7]       (its own [t (3), quat (4)] relative to frame 0)

With ``center`` the mean over the clip's frames is subtracted at every grid position: at small
scale the tokens are dominated by the position embedding (the same in every frame), which would
make every frame look like frame 0 at zero displacement; what remains is the frame's content.

``corr`` is the displacement-correlation profile (a cost volume summed over the grid): with
``ẑ`` the channel-L2-normalised grids, ``C_k[d] = mean_{u : u+d in grid} ⟨ẑ_k(u + d), ẑ_0(u)⟩`` for every
displacement ``d ∈ [−(g−1), g−1]²``; the displacement where frame k's content best matches frame
0's is what a yaw turn moves, so its sign is the turn direction.

``pool_g`` is adaptive average pooling of the ``h×w`` grid to ``g×g`` (the identity when
``h = w = g``), so the module does not depend on the image size. Because ``W_t, b_t`` start at
zero, a model with the module but untrained predicts exactly what it predicts without it. ``p̂``
is supervised by the auxiliary term of :class:`recon.losses.ReconLoss` (``recon.loss.relative_pose_weight``),
which trains the module even while ``δ`` is still zero.

Its weights are saved with the camera head, under the VGGT-layout prefix
``camera_head.relative_pose.*`` (:data:`recon.vggt_loader.RELATIVE_POSE_PREFIX`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RELATIVE_POSE_DIM = 7
"""Width of the module's own prediction: translation (3) + quaternion XYZW (4), as in the pose encoding."""


class RelativePoseModule(nn.Module):
    """Patch tokens ``[B, S, P, dim]`` → (camera-token offset ``[B, S, dim]``, relative pose ``[B, S, 7]``).

    Args:
        dim: aggregator output width (2C).
        channels: ``c``, channels each patch token is reduced to.
        grid: ``g``, side of the pooled patch grid.
        hidden: width of the MLP over the concatenated grids.
        correlation: also feed the displacement-correlation profile ``C_k``.
        center: subtract the mean over the clip's frames at each grid position first.

    The buffer ``options = [correlation, center]`` is saved with the weights, so a loader can rebuild the module.
    """

    def __init__(
        self,
        dim: int,
        channels: int = 8,
        grid: int = 8,
        hidden: int = 256,
        correlation: bool = False,
        center: bool = False,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.center = center
        self.register_buffer("options", torch.tensor([float(correlation), float(center)]))
        self.correlation = correlation
        self.norm = nn.LayerNorm(dim)
        self.reduce = nn.Linear(dim, channels)
        flat = 2 * channels * grid * grid + (correlation_width(grid) if correlation else 0)
        self.mlp = nn.Sequential(nn.Linear(flat, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.to_token = nn.Linear(hidden, dim)
        self.pose = nn.Linear(hidden, RELATIVE_POSE_DIM)
        nn.init.zeros_(self.to_token.weight)
        nn.init.zeros_(self.to_token.bias)

    def forward(self, patch_tokens: Tensor, grid_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """patch_tokens ``[B, S, P, dim]`` with ``P = h·w`` of ``grid_hw`` → (``δ [B, S, dim]``, ``p̂ [B, S, 7]``)."""
        b, s, p, _ = patch_tokens.shape
        h, w = grid_hw
        if p != h * w:
            raise ValueError(f"relative pose module: {p} patch tokens do not match grid {grid_hw}")
        z = self.reduce(self.norm(patch_tokens))  # [B, S, P, c]
        z = z.reshape(b * s, h, w, -1).permute(0, 3, 1, 2)  # [B·S, c, h, w]
        if (h, w) != (self.grid, self.grid):
            z = F.adaptive_avg_pool2d(z, self.grid)
        z = z.reshape(b, s, *z.shape[1:])  # [B, S, c, g, g]
        if self.center:
            z = z - z.mean(dim=1, keepdim=True)
        first = z[:, :1].expand_as(z)
        parts = [z.flatten(2), first.flatten(2)]  # frame k beside frame 0
        if self.correlation:
            parts.append(displacement_correlation(z, first))
        pair = torch.cat(parts, dim=-1)
        hidden = self.mlp(pair)
        return self.to_token(hidden), self.pose(hidden)


def correlation_width(grid: int) -> int:
    """Number of displacements of a ``grid × grid`` correlation profile: ``(2g − 1)²``."""
    return (2 * grid - 1) ** 2


def displacement_correlation(a: Tensor, b: Tensor) -> Tensor:
    """``C[d] = mean_u ⟨â(u + d), b̂(u)⟩`` over grid positions ``u`` with ``u + d`` inside the grid.

    Args:
        a, b: ``[..., c, g, g]`` grids (``â, b̂``: L2-normalised over ``c``).
    Returns:
        ``[..., (2g−1)²]``, displacement ``d = (dy, dx)`` at index ``(dy + g − 1)·(2g − 1) + dx + g − 1``.
    """
    g = a.shape[-1]
    if a.shape[-2:] != (g, g) or b.shape != a.shape:
        raise ValueError(
            f"displacement_correlation: grids must be equal and square [..., c, g, g], got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    lead = a.shape[:-3]
    a = F.normalize(a.flatten(-2), dim=-2)  # [..., c, g·g], unit over c
    b = F.normalize(b.flatten(-2), dim=-2)
    sim = torch.einsum("...cp,...cq->...pq", a, b)  # [..., g·g (a), g·g (b)]
    ys, xs = torch.meshgrid(torch.arange(g, device=a.device), torch.arange(g, device=a.device), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    side = 2 * g - 1
    bins = ((ys[:, None] - ys[None, :] + g - 1) * side + (xs[:, None] - xs[None, :] + g - 1)).flatten()  # [g⁴]
    counts = torch.bincount(bins, minlength=side * side).to(sim.dtype)
    out = sim.new_zeros(*lead, side * side).index_add_(-1, bins, sim.flatten(-2))
    return out / counts
