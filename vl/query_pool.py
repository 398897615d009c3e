"""Attention pooling of the prompt's words into the grounding query (``vl.grounding.query: attention``).

A tiny LM trained from scratch writes residual updates that do not depend on the token (the same
attention to the 3D tokens at every text position), so after the final norm the ``<ground>``
state and even the mean prompt state are nearly the same for every description. This module gives
the description a direct path into the query: each prompt text token contributes its last-layer
state and its input embedding,

    u_t = W_u [h_t ; e_t],   a = softmax_t(v · tanh(W_a u_t)) over the prompt's text tokens,
    q = Σ_t a_t u_t,

and ``q`` replaces the mean prompt state added to the ``<ground>`` state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DescriptionAttentionPool"]


class DescriptionAttentionPool(nn.Module):
    """Learned attention pooling over the prompt's text tokens.

    Args:
        hidden_dim: LLM width H.
    """

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.norm_state = nn.LayerNorm(hidden_dim)
        self.norm_embed = nn.LayerNorm(hidden_dim)
        self.value = nn.Linear(2 * hidden_dim, hidden_dim)
        self.attn = nn.Linear(hidden_dim, hidden_dim)
        self.score = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, states: Tensor, embeds: Tensor, mask: Tensor) -> Tensor:
        """``states [B, L, H]`` (last layer), ``embeds [B, L, H]`` (input embeddings), ``mask [B, L]`` bool
        (the prompt's text tokens) → pooled ``[B, H]`` (zeros for a row without text tokens)."""
        u = self.value(torch.cat([self.norm_state(states), self.norm_embed(embeds)], dim=-1))  # [B, L, H]
        logits = self.score(torch.tanh(self.attn(u))).squeeze(-1).float()  # [B, L]
        logits = logits.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0) * mask  # a row without text → zeros
        return torch.einsum("bl,blh->bh", weights.to(u.dtype), u)
