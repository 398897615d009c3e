"""The Cross-Task Adapter with learnable bridge tokens (Vid-LLM §3.1, Eq. 1–2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cta.mha import MultiHeadAttention, zero_output_projection
from cta.mlp import ProjectionMLP
from cta.scope import check_tokens, group_tokens, ungroup_tokens

__all__ = ["BridgeAdapter"]


class BridgeAdapter(nn.Module):
    """Cross-Task Adapter: φ_geom/φ_lang streams exchanging information through K bridge tokens.

    1. ``T_geom = φ_geom(T_base)``, ``T_lang = φ_lang(T_base)`` (Eq. 1; MLPs C → 4C → C, GELU).
    2. ``T'_bridge = MHA_g(T_bridge, T̂_geom, T̂_geom) + MHA_l(T_bridge, T̂_lang, T̂_lang)`` (Eq. 2),
       where ``T̂ = LayerNorm(T)`` (pre-norm) and the K learnable bridge tokens are shared by all
       clips; the attention runs over all ``S·P`` tokens of the clip (scope 'clip') or over the
       ``P`` tokens of each frame with a separate bridge copy per frame (scope 'frame', batched).
    3. Read-back (residual): ``T'_geom = T_geom + MHA_rg(T̂_geom, B̂, B̂)``,
       ``T'_lang = T_lang + MHA_rl(T̂_lang, B̂, B̂)`` with ``B̂ = LayerNorm(T'_bridge)``.

    Args:
        dim: token width C; num_bridge_tokens: K; num_heads: heads of all four attentions;
        mlp_ratio: φ hidden width / C; scope: 'clip' or 'frame';
        identity_init: residual φ with a zero last layer and zero read-back output projections, so
            the adapter is exactly the identity at initialisation (``cta.identity_init``).
    """

    def __init__(
        self,
        dim: int,
        num_bridge_tokens: int = 16,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        scope: str = "clip",
        identity_init: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.scope = scope
        self.phi_geom = ProjectionMLP(dim, mlp_ratio, residual=identity_init)
        self.phi_lang = ProjectionMLP(dim, mlp_ratio, residual=identity_init)
        self.bridge_tokens = nn.Parameter(torch.empty(num_bridge_tokens, dim))
        nn.init.trunc_normal_(self.bridge_tokens, std=0.02)
        self.norm_geom = nn.LayerNorm(dim)
        self.norm_lang = nn.LayerNorm(dim)
        self.norm_bridge = nn.LayerNorm(dim)
        self.bridge_from_geom = MultiHeadAttention(dim, num_heads)
        self.bridge_from_lang = MultiHeadAttention(dim, num_heads)
        self.geom_from_bridge = MultiHeadAttention(dim, num_heads)
        self.lang_from_bridge = MultiHeadAttention(dim, num_heads)
        if identity_init:
            zero_output_projection(self.geom_from_bridge)
            zero_output_projection(self.lang_from_bridge)

    def update_bridge(self, bridge: Tensor, geom: Tensor, lang: Tensor) -> Tensor:
        """Eq. 2: ``MHA_g(bridge, geom, geom) + MHA_l(bridge, lang, lang)``.

        Args:
            bridge: ``[G, K, C]``; geom, lang: ``[G, N, C]`` (already normalised).
        Returns:
            ``T'_bridge [G, K, C]``.
        """
        return self.bridge_from_geom(bridge, geom, geom) + self.bridge_from_lang(bridge, lang, lang)

    def forward(self, t_base: Tensor, geometry_tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``T_base [B, S, P, C]`` → ``(T'_geom, T'_lang)``, both ``[B, S, P, C]``.

        ``geometry_tokens`` is accepted for interface uniformity and ignored (the adapter derives
        its geometry stream from ``T_base``).
        """
        check_tokens(t_base, self.dim)
        shape = tuple(t_base.shape)
        geom = group_tokens(self.phi_geom(t_base), self.scope)
        lang = group_tokens(self.phi_lang(t_base), self.scope)
        geom_n = self.norm_geom(geom)
        lang_n = self.norm_lang(lang)
        bridge = self.bridge_tokens.unsqueeze(0).expand(geom.shape[0], -1, -1)
        bridge_n = self.norm_bridge(self.update_bridge(bridge, geom_n, lang_n))
        geom_out = geom + self.geom_from_bridge(geom_n, bridge_n, bridge_n)
        lang_out = lang + self.lang_from_bridge(lang_n, bridge_n, bridge_n)
        return ungroup_tokens(geom_out, shape), ungroup_tokens(lang_out, shape)
