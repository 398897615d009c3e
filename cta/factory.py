"""``build_cta(cfg, dim)``: the one switch over the adapter variants (``CTAConfig.mode``)."""

from __future__ import annotations

from torch import nn

from cta.adapter import BridgeAdapter
from cta.config import CTAConfig
from cta.variants import (
    AddFusion,
    ConcatSelfAttentionAdapter,
    CrossAttentionAdapter,
    CrossAttentionFusion,
    IdentityAdapter,
)

__all__ = ["build_cta"]


def build_cta(cfg: CTAConfig, dim: int) -> nn.Module:
    """Build the adapter selected by ``cfg.mode`` for tokens of width ``dim``.

    Every returned module maps ``(T_base [B, S, P, C], geometry_tokens=None)`` to
    ``(T'_geom, T'_lang)``, both ``[B, S, P, C]``.
    """
    if dim <= 0:
        raise ValueError(f"build_cta: token width must be > 0, got {dim}")
    geometry_dim = cfg.geometry_dim or dim
    if cfg.mode == "none":
        return IdentityAdapter(dim)
    if cfg.mode == "bridge":
        return BridgeAdapter(dim, cfg.num_bridge_tokens, cfg.num_heads, cfg.mlp_ratio, cfg.scope, cfg.identity_init)
    if cfg.mode == "concat_sa":
        return ConcatSelfAttentionAdapter(dim, cfg.num_heads, cfg.mlp_ratio, cfg.scope, cfg.identity_init)
    if cfg.mode == "cross_attn":
        return CrossAttentionAdapter(dim, cfg.num_heads, cfg.mlp_ratio, cfg.scope, cfg.identity_init)
    if cfg.mode == "add":
        return AddFusion(dim, geometry_dim, cfg.mlp_ratio)
    if cfg.mode == "xattn_fusion":
        return CrossAttentionFusion(dim, geometry_dim, cfg.num_heads, cfg.scope)
    raise ValueError(f"cta.mode = {cfg.mode!r} is not a known adapter variant")
