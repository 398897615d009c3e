"""DPT decoder and VGGT's DPT depth head (depth ``exp``, confidence ``expp1``).

:class:`DPTDecoder` is the shared fusion path (also used by the metric depth model):
shared LayerNorm → per-layer 1×1 projection → UV position embedding → resize
(ConvTranspose ×4, ×2, identity, conv stride 2) → 3×3 ``layer{k}_rn`` → RefineNet fusion →
``output_conv1`` → bilinear resize to exactly H×W → UV position embedding again.
:class:`DPTHead` adds ``output_conv2`` (3×3 → ReLU → 1×1 to 2 channels), the activations and the
per-frame chunking. Parameter names follow VGGT's ``depth_head.*`` layout.

The feature maps are kept channels-last (NHWC memory, NCHW shape) from the token projection on:
the tokens ``[N, P, C]`` already are pixels × channels, oneDNN's channels-last convolutions skip
the layout reorders of every call, and the kernel = stride transposed convolutions of the resize
path are one matrix product each (:func:`patch_conv_transpose`). Results equal the contiguous
computation up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon.heads.fusion import FeatureFusionBlock, interpolate_bilinear
from recon.layers.pos_embed import add_uv_embedding


def patch_conv_transpose(x: Tensor, layer: nn.Module) -> Tensor:
    """Apply ``layer`` to ``x [N, C, h, w]``; a ``ConvTranspose2d`` whose kernel equals its stride
    (no padding, dilation or groups: every input pixel writes its own ``k×k`` output block) runs as
    one matrix product ``[N·h·w, C] @ [C, O·k·k]`` and returns a channels-last ``[N, O, h·k, w·k]``."""
    if not (
        isinstance(layer, nn.ConvTranspose2d)
        and layer.kernel_size == layer.stride
        and layer.padding == (0, 0)
        and layer.output_padding == (0, 0)
        and layer.dilation == (1, 1)
        and layer.groups == 1
    ):
        return layer(x)
    n, c, h, w = x.shape
    kh, kw = layer.kernel_size
    o = layer.out_channels
    pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # free for a channels-last x
    blocks = (pixels @ layer.weight.reshape(c, o * kh * kw)).view(n, h, w, o, kh, kw)
    out = blocks.permute(0, 1, 4, 2, 5, 3).reshape(n, h * kh, w * kw, o)
    if layer.bias is not None:
        out = out + layer.bias
    return out.permute(0, 3, 1, 2)


class DPTDecoder(nn.Module):
    """Fuse 4 layers of patch tokens into a full-resolution feature map.

    Args:
        in_dim: token width of the input layers.
        features: channels of the fusion path (output has ``features // 2``).
        out_channels: channels of the four 1×1 projections.
        pos_embed: add the UV position embedding after the projections and at the output.
    """

    def __init__(
        self, in_dim: int, features: int = 256, out_channels: list[int] | None = None, pos_embed: bool = True
    ) -> None:
        super().__init__()
        out_channels = list(out_channels or [256, 512, 1024, 1024])
        if len(out_channels) != 4:
            raise ValueError(f"DPTDecoder: out_channels must have 4 entries, got {out_channels}")
        if pos_embed and (features // 2) % 4:
            raise ValueError(
                f"DPTDecoder: features // 2 must be divisible by 4 for the UV embedding, got features={features}"
            )
        self.features = features
        self.pos_embed = pos_embed
        self.norm = nn.LayerNorm(in_dim)
        self.projects = nn.ModuleList([nn.Conv2d(in_dim, oc, kernel_size=1) for oc in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        scratch = nn.Module()
        for k, oc in enumerate(out_channels, start=1):
            setattr(scratch, f"layer{k}_rn", nn.Conv2d(oc, features, kernel_size=3, padding=1, bias=False))
        for k in range(1, 5):
            setattr(scratch, f"refinenet{k}", FeatureFusionBlock(features, has_residual=k != 4))
        scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.scratch = scratch

    def forward(self, layer_tokens: list[Tensor], grid_hw: tuple[int, int], image_hw: tuple[int, int]) -> Tensor:
        """layer_tokens: 4 × ``[N, P, in_dim]`` (P = h·w patch tokens) → ``[N, features // 2, H, W]``."""
        if len(layer_tokens) != 4:
            raise ValueError(f"DPTDecoder: expected 4 token layers, got {len(layer_tokens)}")
        h, w = grid_hw
        feats = []
        for i, tokens in enumerate(layer_tokens):
            n, p, c = tokens.shape
            if p != h * w:
                raise ValueError(f"DPTDecoder: layer {i} has {p} tokens, expected grid {h}x{w} = {h * w}")
            proj = self.projects[i]  # 1×1 conv = a linear map of every token; the result is channels-last
            x = F.linear(self.norm(tokens), proj.weight.flatten(1), proj.bias)
            x = x.view(n, h, w, -1).permute(0, 3, 1, 2)
            if self.pos_embed:
                x = add_uv_embedding(x, image_hw)
            feats.append(patch_conv_transpose(x, self.resize_layers[i]))
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{k}_rn")(f) for k, f in enumerate(feats, start=1))
        out = s.refinenet4(l4, size=l3.shape[2:])
        out = s.refinenet3(out, l3, size=l2.shape[2:])
        out = s.refinenet2(out, l2, size=l1.shape[2:])
        out = s.refinenet1(out, l1)
        out = s.output_conv1(out)
        out = interpolate_bilinear(out, image_hw)
        if self.pos_embed:
            out = add_uv_embedding(out, image_hw, inplace=True)
        return out


class DPTHead(DPTDecoder):
    """VGGT's depth head: ``[B,S,5+P,2C]`` aggregator layers → depth and confidence ``[B,S,H,W]``.

    Args:
        in_dim: aggregator output width (2C).
        layer_indices: which aggregator layers feed the 4 DPT inputs.
        frames_chunk_size: frames decoded at once (0 = all).
    """

    def __init__(
        self,
        in_dim: int,
        layer_indices: list[int],
        features: int = 256,
        out_channels: list[int] | None = None,
        frames_chunk_size: int = 8,
        output_dim: int = 2,
        head_hidden: int = 32,
    ) -> None:
        super().__init__(in_dim, features, out_channels, pos_embed=True)
        self.layer_indices = list(layer_indices)
        self.frames_chunk_size = frames_chunk_size
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, head_hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_hidden, output_dim, kernel_size=1),
        )

    def _decode(self, layers: dict[int, Tensor], s0: int, s1: int, grid_hw, image_hw, patch_start_idx: int) -> Tensor:
        tokens = [layers[i][:, s0:s1, patch_start_idx:] for i in self.layer_indices]
        b, s = tokens[0].shape[:2]
        fmap = super().forward([t.reshape(b * s, *t.shape[2:]) for t in tokens], grid_hw, image_hw)
        out = self.scratch.output_conv2(fmap)
        return out.reshape(b, s, *out.shape[1:])

    def forward(
        self, layers: dict[int, Tensor], image_hw: tuple[int, int], patch_start_idx: int, patch_size: int = 14
    ) -> tuple[Tensor, Tensor]:
        """layers: {index: ``[B, S, 5+P, C]``} → depth ``[B, S, H, W]`` (exp), conf ``[B, S, H, W]`` (1 + exp)."""
        missing = [i for i in self.layer_indices if i not in layers]
        if missing:
            raise ValueError(f"DPTHead: aggregator layers {missing} were not returned (have {sorted(layers)})")
        h, w = image_hw[0] // patch_size, image_hw[1] // patch_size
        s_total = layers[self.layer_indices[0]].shape[1]
        chunk = self.frames_chunk_size if 0 < self.frames_chunk_size < s_total else s_total
        outs = [
            self._decode(layers, s0, min(s0 + chunk, s_total), (h, w), image_hw, patch_start_idx)
            for s0 in range(0, s_total, chunk)
        ]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return torch.exp(out[:, :, 0]), 1.0 + torch.exp(out[:, :, 1])
