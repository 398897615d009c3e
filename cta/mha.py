"""Multi-head attention module of the adapter (the project's one MHA; math in ``recon.attention``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recon.attention import attention

__all__ = ["MultiHeadAttention", "zero_output_projection"]


class MultiHeadAttention(nn.Module):
    """Standard multi-head attention ``MHA(query, key, value)`` with input/output projections.

    ``out = W_o · concat_h softmax(Q_h K_hᵀ / √d) V_h`` with ``Q = W_q·query``, ``K = W_k·key``,
    ``V = W_v·value`` (all with bias), heads of width ``d = dim / num_heads``. The softmax
    attention itself runs through :func:`recon.attention.attention` (SDPA / xformers / math) with
    the module's ``attention_backend`` (``None`` = the process default).

    Args:
        dim: model width C (query, key and value all have C channels).
        num_heads: number of heads; must divide ``dim``.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"cta.num_heads = {num_heads} must divide the token width {dim}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attention_backend: str | None = None  # None = the process default (recon.attention)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor | None = None, key_mask: Tensor | None = None
    ) -> Tensor:
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: ``[B, Nq, C]``; key: ``[B, Nk, C]``; value: ``[B, Nk, C]`` (default: ``key``).
            key_mask: optional ``[B, Nk]`` bool, True = attend to this key.
        Returns:
            ``[B, Nq, C]``.
        """
        value = key if value is None else value
        if query.shape[-1] != self.dim or key.shape[-1] != self.dim:
            raise ValueError(
                f"MultiHeadAttention expects width {self.dim}, got query {tuple(query.shape)}, key {tuple(key.shape)}"
            )
        q = self._split(self.q_proj(query))
        k = self._split(self.k_proj(key))
        v = self._split(self.v_proj(value))
        mask = None if key_mask is None else key_mask[:, None, None, :].to(torch.bool)
        out = attention(q, k, v, attn_mask=mask, backend=self.attention_backend)
        b, _, nq, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, nq, self.dim))


def zero_output_projection(mha: MultiHeadAttention) -> MultiHeadAttention:
    """Zero ``W_o`` and its bias in place (a residual ``x + MHA(...)`` then starts as ``x``); returns ``mha``."""
    nn.init.zeros_(mha.out_proj.weight)
    nn.init.zeros_(mha.out_proj.bias)
    return mha
