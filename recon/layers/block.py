"""Pre-norm transformer block of the aggregator and camera head (qk-norm, 2D RoPE, LayerScale).

Attention goes through :func:`recon.attention.attention` (the project's backend switch) with the
module's ``attention_backend`` (``None`` = the process default; see :func:`recon.attention.use_attention_backend`).
The aggregator's global blocks can merge the tokens entering attention (:mod:`recon.layers.token_merge`).
Parameter names follow VGGT (``norm1, attn.qkv, attn.q_norm, attn.k_norm, attn.proj, ls1.gamma,
norm2, mlp.fc1, mlp.fc2, ls2.gamma``) so checkpoints map one to one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recon.attention import attention
from recon.layers.rope import RopePositions, RotaryEmbedding2D
from recon.layers.token_merge import MergePlan, match


class LayerScale(nn.Module):
    """Per-channel learned scale ``x · gamma`` (``gamma`` initialised to ``init_value``)."""

    def __init__(self, dim: int, init_value: float = 0.01) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``: ``[..., in_dim] → [..., out_dim]``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim or in_dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention ``[B, N, C] → [B, N, C]`` with optional qk-norm and 2D RoPE."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qk_norm: bool = False,
        rope: RotaryEmbedding2D | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope
        self.attention_backend: str | None = None  # None = the process default (recon.attention)

    def forward(self, x: Tensor, pos: Tensor | RopePositions | None = None, attn_bias: Tensor | None = None) -> Tensor:
        """x ``[B, N, C]``; pos ``[B, N, 2]`` integer (y, x) positions, or the same wrapped in
        :class:`~recon.layers.rope.RopePositions` to share the rotation tables between layers
        (needed when RoPE is on); attn_bias: optional additive logit bias broadcastable to
        ``[B, heads, N, N]`` (token merging's ``[B, 1, 1, N]`` proportional-attention term)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if pos is None:
                raise ValueError("Attention: RoPE is enabled but no token positions were given")
            tables = self.rope.prepare(pos, self.head_dim, q.device, q.dtype)  # one gather for q and k
            q, k = self.rope.apply(q, tables), self.rope.apply(k, tables)
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype)
        out = attention(q, k, v, attn_mask=attn_bias, backend=self.attention_backend)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """``x + ls1(attn(norm1(x))); x + ls2(mlp(norm2(x)))`` on ``[B, N, C]``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = False,
        rope: RotaryEmbedding2D | None = None,
        init_value: float = 0.01,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, rope=rope)
        self.ls1 = LayerScale(dim, init_value)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_value)

    def forward(self, x: Tensor, pos: Tensor | RopePositions | None = None, merge: MergePlan | None = None) -> Tensor:
        """x ``[B, N, C]``; pos: token positions (see :class:`Attention`).

        merge: token merging of the attention input (:mod:`recon.layers.token_merge`; global blocks
        only): ``norm1(x)`` is merged to ``[B, M, C]``, attended at the plan's merged positions (``pos``
        unused) and unmerged back to ``[B, N, C]`` before the residual; the MLP sees every token.
        """
        if merge is None:
            x = x + self.ls1(self.attn(self.norm1(x), pos))
        else:
            h = self.norm1(x)
            merged = match(merge, h)
            y = self.attn(merged.merge(h), merge.positions, attn_bias=merged.attention_bias())
            x = x + self.ls1(merged.unmerge(y))
        return x + self.ls2(self.mlp(self.norm2(x)))
