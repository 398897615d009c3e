"""Fusion variants of the adapter: the paper's ablations (Table 6) and the seed baselines.

All share the interface ``forward(T_base [B, S, P, C], geometry_tokens=None) → (T'_geom, T'_lang)``.

*Geometry tokens* (used only by ``add`` and ``xattn_fusion``) are per-patch features of a
separate geometry encoder, ``[B, S, Ng, Cg]`` (e.g. the VGGT aggregator's patch tokens, Cg = 2C,
or the frozen geometry teacher's tokens, Cg = C); ``Cg`` is ``CTAConfig.geometry_dim`` (0 = C).
When they are not given, ``T_base`` itself is the geometry source (so the module still runs
inside a model that has no separate geometry encoder).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cta.mha import MultiHeadAttention, zero_output_projection
from cta.mlp import ProjectionMLP
from cta.scope import check_tokens, group_tokens, ungroup_tokens

__all__ = [
    "IdentityAdapter",
    "ConcatSelfAttentionAdapter",
    "CrossAttentionAdapter",
    "AddFusion",
    "CrossAttentionFusion",
]


class IdentityAdapter(nn.Module):
    """``T'_geom = T'_lang = T_base`` (the same tensor object, bit-exact).

    Mode ``none``: the "w/o CTA" ablation (shared tokens to both branches), which is also the
    VGGT-parity setting (``passthrough``, a deprecated alias of ``none``). No parameters.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t_base: Tensor, geometry_tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``[B, S, P, C]`` → ``(T_base, T_base)``."""
        check_tokens(t_base, self.dim)
        return t_base, t_base


class ConcatSelfAttentionAdapter(nn.Module):
    """CTA–Concat-SA: φ streams, self-attention over their concatenation, split back.

    ``X = [T_geom; T_lang]`` per scope group (``[G, 2N, C]``), ``X' = X + MHA(X̂, X̂, X̂)``,
    ``T'_geom, T'_lang = split(X')``.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, scope: str = "clip", identity_init: bool = False
    ) -> None:
        super().__init__()
        self.dim = dim
        self.scope = scope
        self.phi_geom = ProjectionMLP(dim, mlp_ratio, residual=identity_init)
        self.phi_lang = ProjectionMLP(dim, mlp_ratio, residual=identity_init)
        self.norm = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        if identity_init:
            zero_output_projection(self.attn)

    def forward(self, t_base: Tensor, geometry_tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``[B, S, P, C]`` → ``(T'_geom, T'_lang)`` ``[B, S, P, C]`` each."""
        check_tokens(t_base, self.dim)
        shape = tuple(t_base.shape)
        geom = group_tokens(self.phi_geom(t_base), self.scope)
        lang = group_tokens(self.phi_lang(t_base), self.scope)
        n = geom.shape[1]
        x = torch.cat((geom, lang), dim=1)
        x_n = self.norm(x)
        x = x + self.attn(x_n, x_n, x_n)
        return ungroup_tokens(x[:, :n], shape), ungroup_tokens(x[:, n:], shape)


class CrossAttentionAdapter(nn.Module):
    """CTA–w/o Bridge (CA): each φ stream cross-attends the other (residual), no bridge tokens.

    ``T'_geom = T_geom + MHA_g(T̂_geom, T̂_lang, T̂_lang)``, ``T'_lang = T_lang + MHA_l(T̂_lang, T̂_geom, T̂_geom)``.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, scope: str = "clip", identity_init: bool = False
    ) -> None:
        super().__init__()
        self.dim = dim
        self.scope = scope
        self.phi_geom = ProjectionMLP(dim, mlp_ratio, residual=identity_init)
        self.phi_lang = ProjectionMLP(dim, mlp_ratio, residual=identity_init)
        self.norm_geom = nn.LayerNorm(dim)
        self.norm_lang = nn.LayerNorm(dim)
        self.geom_from_lang = MultiHeadAttention(dim, num_heads)
        self.lang_from_geom = MultiHeadAttention(dim, num_heads)
        if identity_init:
            zero_output_projection(self.geom_from_lang)
            zero_output_projection(self.lang_from_geom)

    def forward(self, t_base: Tensor, geometry_tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``[B, S, P, C]`` → ``(T'_geom, T'_lang)`` ``[B, S, P, C]`` each."""
        check_tokens(t_base, self.dim)
        shape = tuple(t_base.shape)
        geom = group_tokens(self.phi_geom(t_base), self.scope)
        lang = group_tokens(self.phi_lang(t_base), self.scope)
        geom_n, lang_n = self.norm_geom(geom), self.norm_lang(lang)
        geom_out = geom + self.geom_from_lang(geom_n, lang_n, lang_n)
        lang_out = lang + self.lang_from_geom(lang_n, geom_n, geom_n)
        return ungroup_tokens(geom_out, shape), ungroup_tokens(lang_out, shape)


def _geometry_source(t_base: Tensor, geometry_tokens: Tensor | None, geometry_dim: int) -> Tensor:
    g = t_base if geometry_tokens is None else geometry_tokens
    if g.ndim != 4 or g.shape[:2] != t_base.shape[:2] or g.shape[-1] != geometry_dim:
        raise ValueError(
            f"cta: geometry_tokens must be [B, S, Ng, {geometry_dim}] with B, S = {tuple(t_base.shape[:2])} "
            f"(cta.geometry_dim), got {tuple(g.shape)}"
        )
    return g


class AddFusion(nn.Module):
    """VG-LLM-style fusion: projected geometry features added to the semantic tokens.

    ``T'_geom = T_base`` (the geometry branch sees the encoder tokens unchanged) and
    ``T'_lang = T_base + ψ(G)`` with ``ψ`` an MLP ``Cg → r·C → C`` whose last layer starts at zero
    (so training starts from ``T'_lang = T_base``). Needs ``Ng = P`` (token-aligned features).
    """

    def __init__(self, dim: int, geometry_dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.dim = dim
        self.geometry_dim = geometry_dim
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.merger = nn.Sequential(
            nn.LayerNorm(geometry_dim), nn.Linear(geometry_dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        )
        nn.init.zeros_(self.merger[-1].weight)
        nn.init.zeros_(self.merger[-1].bias)

    def forward(self, t_base: Tensor, geometry_tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``T_base [B, S, P, C]``, ``G [B, S, P, Cg]`` → ``(T_base, T_base + ψ(G))``."""
        check_tokens(t_base, self.dim)
        g = _geometry_source(t_base, geometry_tokens, self.geometry_dim)
        if g.shape[2] != t_base.shape[2]:
            raise ValueError(
                f"cta 'add': geometry_tokens need P = {t_base.shape[2]} tokens per frame, got {g.shape[2]}"
            )
        return t_base, t_base + self.merger(g)


class CrossAttentionFusion(nn.Module):
    """VLM-3R-style fusion: semantic tokens cross-attend the geometry tokens.

    ``Ĝ = LayerNorm(W_g G)`` (``Cg → C``), ``T'_lang = T_base + MHA(LN(T_base), Ĝ, Ĝ)`` over the
    clip (all ``S·Ng`` geometry tokens) or per frame; ``T'_geom = T_base``.
    """

    def __init__(self, dim: int, geometry_dim: int, num_heads: int, scope: str = "clip") -> None:
        super().__init__()
        self.dim = dim
        self.geometry_dim = geometry_dim
        self.scope = scope
        self.geometry_proj = nn.Linear(geometry_dim, dim)
        self.norm_lang = nn.LayerNorm(dim)
        self.norm_geom = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)

    def forward(self, t_base: Tensor, geometry_tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``T_base [B, S, P, C]``, ``G [B, S, Ng, Cg]`` → ``(T_base, T'_lang [B, S, P, C])``."""
        check_tokens(t_base, self.dim)
        g = _geometry_source(t_base, geometry_tokens, self.geometry_dim)
        shape = tuple(t_base.shape)
        lang = group_tokens(t_base, self.scope)
        geom = group_tokens(self.norm_geom(self.geometry_proj(g)), self.scope)
        lang_out = lang + self.attn(self.norm_lang(lang), geom, geom)
        return t_base, ungroup_tokens(lang_out, shape)
