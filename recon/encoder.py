"""Shared image encoder: DINOv2 with registers (transformers) or a plain conv patch embed.

Input images are in [0, 1]; ImageNet mean/std normalisation happens here. The output is the
patch tokens after the final LayerNorm (cls and register outputs dropped) ``[B·S, P, C]`` plus
the requested intermediate block outputs (patch tokens, also through the final LayerNorm, as
DINOv2's ``get_intermediate_layers(norm=True)``) for the metric-depth decoder.

Position embeddings for grids other than the pre-training one are interpolated by
transformers' ``Dinov2WithRegistersEmbeddings`` (bicubic, antialias, by output size, float32),
which is the interpolation VGGT's DINOv2 uses (offset 0, antialias on). The transformers model's
attention is routed through :func:`recon.attention.attention` (registered as the ``"recon"``
attention implementation), so the project's backend switch also covers the encoder: each DINOv2
attention module carries an ``attention_backend`` attribute (``None`` = the process default) that
the hook passes as ``backend=``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from recon.attention import ATTENTION_BACKEND_ATTR, attention
from recon.config import EncoderConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class EncoderOutput:
    """Encoder result: ``patch_tokens [N, P, C]``, ``intermediates {layer: [N, P, C]}``, ``grid_hw`` (h, w)."""

    patch_tokens: Tensor
    intermediates: dict[int, Tensor] = field(default_factory=dict)
    grid_hw: tuple[int, int] = (0, 0)


ATTN_IMPLEMENTATION = "recon"
"""Name under which :func:`recon.attention.attention` is registered with transformers' AttentionInterface."""


def _recon_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling=None,
    dropout=0.0,
    **kwargs,
):
    """transformers attention hook: ``[B, heads, N, D]`` q/k/v → (``[B, N, heads, D]``, None) via the project switch."""
    if dropout:
        raise ValueError(
            f"encoder: attention dropout {dropout} is not supported by recon.attention (set attention_probs_dropout_prob=0)"
        )
    out = attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        scale=scaling,
        backend=getattr(module, ATTENTION_BACKEND_ATTR, None),
    )
    return out.transpose(1, 2).contiguous(), None


def _mark_attention_modules(model: nn.Module) -> int:
    """Give transformers' DINOv2 attention modules (the ``module`` the hook receives: classes named
    ``...Attention`` with their own q/k/v projections) an ``attention_backend`` of ``None``, so
    :func:`recon.attention.use_attention_backend` reaches them. Returns how many were marked."""
    count = 0
    for sub in model.modules():
        if type(sub).__name__.endswith("Attention") and any(isinstance(c, nn.Linear) for c in sub.children()):
            setattr(sub, ATTENTION_BACKEND_ATTR, None)
            count += 1
    return count


def register_recon_attention() -> str:
    """Register the project's attention backend with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, _recon_attention_forward)
    return ATTN_IMPLEMENTATION


def build_dinov2_config(cfg: EncoderConfig):
    """A transformers ``Dinov2WithRegistersConfig`` with the sizes of ``cfg``."""
    from transformers import Dinov2WithRegistersConfig

    if not float(cfg.mlp_ratio).is_integer():
        raise ValueError(
            f"encoder.mlp_ratio must be a whole number for the transformers DINOv2 config, got {cfg.mlp_ratio}"
        )
    return Dinov2WithRegistersConfig(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        mlp_ratio=int(cfg.mlp_ratio),
        patch_size=cfg.patch_size,
        image_size=cfg.pretrain_image_size,
        num_register_tokens=cfg.num_register_tokens,
        layerscale_value=cfg.layerscale_init,
        layer_norm_eps=cfg.layer_norm_eps,
        hidden_act="gelu",
        qkv_bias=True,
        use_swiglu_ffn=False,
    )


class SharedEncoder(nn.Module):
    """Images ``[B, S, 3, H, W]`` or ``[N, 3, H, W]`` in [0, 1] → :class:`EncoderOutput` with ``N = B·S``."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.kind = cfg.kind
        self.patch_size = cfg.patch_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if cfg.kind == "conv":
            self.patch_embed = nn.Conv2d(3, cfg.hidden_size, kernel_size=cfg.patch_size, stride=cfg.patch_size)
            self.model = None
        else:
            from transformers import Dinov2WithRegistersModel

            if cfg.pretrained_path:
                if not (Path(cfg.pretrained_path) / "config.json").is_file():
                    raise ValueError(
                        f"encoder.pretrained_path = {cfg.pretrained_path!r} is not a local HF-format directory (no config.json)"
                    )
                self.model = Dinov2WithRegistersModel.from_pretrained(
                    cfg.pretrained_path,
                    local_files_only=True,
                    trust_remote_code=False,
                    attn_implementation=register_recon_attention(),
                )
                hf = self.model.config
                pairs = (
                    ("hidden_size", hf.hidden_size),
                    ("patch_size", hf.patch_size),
                    ("num_layers", hf.num_hidden_layers),
                    ("num_register_tokens", hf.num_register_tokens),
                )
                mismatch = {k: (getattr(cfg, k), v) for k, v in pairs if getattr(cfg, k) != v}
                if mismatch:
                    raise ValueError(
                        f"encoder: config disagrees with {cfg.pretrained_path}/config.json (config, checkpoint): {mismatch}"
                    )
            else:
                dcfg = build_dinov2_config(cfg)
                dcfg._attn_implementation = register_recon_attention()
                self.model = Dinov2WithRegistersModel(dcfg)
            self.num_register_tokens = self.model.config.num_register_tokens
            if _mark_attention_modules(self.model) != len(self.model.encoder.layer):
                raise RuntimeError(
                    "encoder: could not find one attention module per DINOv2 layer to carry attention_backend"
                )
            self.model.embeddings.mask_token.requires_grad_(False)  # unused without masked pre-training (as VGGT)

    @property
    def hidden_size(self) -> int:
        return self.cfg.hidden_size

    def forward(self, images: Tensor, layers: list[int] | None = None) -> EncoderOutput:
        """images ``[B, S, 3, H, W]`` / ``[N, 3, H, W]``; layers: block indices to return (default config's)."""
        if images.dim() == 5:
            images = images.flatten(0, 1)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"encoder: images must be [B,S,3,H,W] or [N,3,H,W], got {tuple(images.shape)}")
        h_img, w_img = images.shape[-2:]
        if h_img % self.patch_size or w_img % self.patch_size:
            raise ValueError(
                f"encoder: image size {h_img}x{w_img} is not a multiple of encoder.patch_size = {self.patch_size}"
            )
        grid = (h_img // self.patch_size, w_img // self.patch_size)
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        layers = list(self.cfg.intermediate_layers if layers is None else layers)
        if self.model is None:
            tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
            return EncoderOutput(tokens, {i: tokens for i in layers}, grid)
        num_layers = len(self.model.encoder.layer)
        bad = [i for i in layers if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f"encoder: intermediate layers {bad} out of range for {num_layers} blocks")
        start = 1 + self.num_register_tokens
        hidden = self.model.embeddings(x)
        norm = self.model.layernorm
        inter = {}
        for i, layer in enumerate(self.model.encoder.layer):
            if self.cfg.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden = checkpoint(layer, hidden, use_reentrant=False)
            else:
                hidden = layer(hidden)
            if i in layers and i != num_layers - 1:
                inter[i] = norm(hidden[:, start:])
        tokens = norm(hidden[:, start:])
        if num_layers - 1 in layers:
            inter[num_layers - 1] = tokens
        return EncoderOutput(tokens, inter, grid)
