"""RefineNet pieces of the DPT path: residual conv unit and feature-fusion block (VGGT/DPT layout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_INTERP_MAX_ELEMENTS = 1_500_000_000


def interpolate_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (align_corners=True) resize ``[N, C, h, w] → [N, C, *size]``, chunked over N when the
    output would exceed the element count F.interpolate handles (large clips at full resolution)."""
    size = (int(size[0]), int(size[1]))
    total = x.shape[0] * x.shape[1] * size[0] * size[1]
    if total <= _INTERP_MAX_ELEMENTS or x.shape[0] == 1:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    chunks = x.chunk(total // _INTERP_MAX_ELEMENTS + 1, dim=0)
    return torch.cat([F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in chunks], dim=0)


class ResidualConvUnit(nn.Module):
    """``relu(x) + conv2(relu(conv1(relu(x))))`` on ``[N, C, h, w]``.

    The skip adds the *activated* input: DPT's unit applies an in-place ReLU to its input first,
    so the published weights were trained with this form.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        # in place on fresh convolution outputs (their backward does not read them): no extra maps
        return self.conv2(F.relu(self.conv1(x), inplace=True)).add_(x)


class FeatureFusionBlock(nn.Module):
    """``out_conv(up(RCU2(x0 + RCU1(x1))))`` with bilinear (align_corners) upsampling to ``size`` (or ×2).

    Computed as ``up(out_conv(RCU2(…)))``: the 1×1 ``out_conv`` is a per-pixel affine map and the
    align-corners bilinear resize a per-channel convex combination of pixels, so the two commute
    (equal up to float rounding, ~1e-7 relative) and the convolution runs on the ×4 smaller map.
    """

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        self.has_residual = has_residual
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(self, x0: Tensor, x1: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        """x0, x1 ``[N, F, h, w]`` → ``[N, F, *size]`` (``size`` None doubles h and w)."""
        out = x0
        if self.has_residual:
            if x1 is None:
                raise ValueError("FeatureFusionBlock: this block needs the skip input x1")
            out = self.resConfUnit1(x1).add_(out)  # a fresh map: add in place
        out = self.out_conv(self.resConfUnit2(out))
        size = (2 * out.shape[-2], 2 * out.shape[-1]) if size is None else tuple(size)
        return interpolate_bilinear(out, size)
