"""Metric Depth Model (paper §3.2): DPT-style decoder on DINOv2 features → metric bins.

Input: 4 intermediate encoder layers of patch tokens ``[B·S, P, C]`` (``P = h·w``,
``h = H / patch_size``). The :class:`~recon.heads.dpt.DPTDecoder` fuses them into
``[n, features // 2, H, W]`` and the :class:`~recon.heads.metric_bins.MetricBinHead` turns the
features into bin probabilities, refined centres and the metric depth ``d = Σ p·c``. Frames are
decoded ``frames_chunk_size`` at a time (memory); the chunks are independent, so the result does
not depend on the chunk size. With ``prediction_stride`` s > 1 the decoder and the bins run at
``(H/s, W/s)`` and the depth (and, on request, probabilities and centres) is bilinearly upsampled
(align_corners, as the DPT path) to ``H × W``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from recon.config import MetricDepthConfig
from recon.heads.dpt import DPTDecoder
from recon.heads.fusion import interpolate_bilinear
from recon.heads.metric_bins import MetricBinHead

__all__ = ["MetricDepthModel"]


class MetricDepthModel(nn.Module):
    """DPT decoder + metric-bin head.

    Args:
        cfg: :class:`~recon.config.MetricDepthConfig`.
        in_dim: width ``C`` of the encoder tokens.
        patch_size: encoder patch size in pixels (image sides must be multiples of it).
    """

    def __init__(self, cfg: MetricDepthConfig, in_dim: int, patch_size: int = 14) -> None:
        super().__init__()
        if in_dim <= 0 or patch_size <= 0:
            raise ValueError(f"MetricDepthModel: in_dim and patch_size must be > 0, got {in_dim}, {patch_size}")
        self.cfg = cfg
        self.in_dim = in_dim
        self.patch_size = patch_size
        self.decoder = DPTDecoder(
            in_dim, features=cfg.features, out_channels=list(cfg.out_channels), pos_embed=cfg.pos_embed
        )
        self.bins = MetricBinHead(
            cfg.features // 2,
            n_bins=cfg.n_bins,
            min_depth=cfg.min_depth,
            max_depth=cfg.max_depth,
            normalization=cfg.normalization,
            hidden=cfg.bin_hidden,
            center_shift_bound=cfg.center_shift_bound,
            min_temperature=cfg.min_temperature,
            max_temperature=cfg.max_temperature,
        )

    def _check_inputs(
        self, layer_tokens: Sequence[Tensor], image_hw: tuple[int, int], num_frames: int
    ) -> tuple[int, int]:
        height, width = image_hw
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"MetricDepthModel: image size {height}x{width} must be a multiple of patch_size {self.patch_size}"
            )
        stride = self.cfg.prediction_stride
        if height % stride or width % stride:
            raise ValueError(
                f"MetricDepthModel: image size {height}x{width} must be a multiple of metric_depth.prediction_stride = {stride}"
            )
        if len(layer_tokens) != 4:
            raise ValueError(f"MetricDepthModel: expected 4 encoder layers, got {len(layer_tokens)}")
        h, w = height // self.patch_size, width // self.patch_size
        first = layer_tokens[0].shape
        for i, tokens in enumerate(layer_tokens):
            if tokens.ndim != 3 or tokens.shape != first or tokens.shape[1] != h * w or tokens.shape[2] != self.in_dim:
                raise ValueError(
                    f"MetricDepthModel: encoder layer {i} has shape {tuple(tokens.shape)}; expected [B·S, {h * w}, {self.in_dim}] "
                    f"for a {height}x{width} image with patch_size {self.patch_size}"
                )
        if num_frames <= 0 or first[0] % num_frames:
            raise ValueError(
                f"MetricDepthModel: {first[0]} images are not a whole number of clips of num_frames = {num_frames}"
            )
        return h, w

    def forward(
        self, layer_tokens: Sequence[Tensor], image_hw: tuple[int, int], num_frames: int, return_bins: bool = False
    ) -> dict[str, Tensor]:
        """Predict metric depth.

        Args:
            layer_tokens: 4 × ``[B·S, P, C]`` encoder patch tokens (frame-major within each clip).
            image_hw: ``(H, W)`` of the input images.
            num_frames: ``S``.
            return_bins: also return ``probs`` and ``centers`` ``[B, S, K, H, W]``.
        Returns:
            dict ``metric_depth`` ``[B, S, H, W]`` (metres, float32) and, on request, ``probs`` and ``centers``.
        """
        grid_hw = self._check_inputs(layer_tokens, image_hw, num_frames)
        total = layer_tokens[0].shape[0]
        chunk = self.cfg.frames_chunk_size if 0 < self.cfg.frames_chunk_size < total else total
        stride = self.cfg.prediction_stride
        pred_hw = (image_hw[0] // stride, image_hw[1] // stride)  # same aspect ratio, so the same UV embedding
        full = (lambda x: interpolate_bilinear(x, tuple(image_hw))) if stride > 1 else (lambda x: x)
        depths, probs, centers = [], [], []
        for start in range(0, total, chunk):
            feats = self.decoder([t[start : start + chunk] for t in layer_tokens], grid_hw, pred_hw)
            out = self.bins(feats)
            depths.append(full(out.depth[:, None])[:, 0])
            if return_bins:
                probs.append(full(out.probs))
                centers.append(full(out.centers))
        batch = total // num_frames
        height, width = image_hw
        result = {"metric_depth": torch.cat(depths).reshape(batch, num_frames, height, width)}
        if return_bins:
            k = self.cfg.n_bins
            result["probs"] = torch.cat(probs).reshape(batch, num_frames, k, height, width)
            result["centers"] = torch.cat(centers).reshape(batch, num_frames, k, height, width)
        return result
