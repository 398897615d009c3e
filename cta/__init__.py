"""Cross-Task Adapter (Vid-LLM §3.1) and the fusion variants used as ablations and baselines."""

from cta.adapter import BridgeAdapter
from cta.factory import build_cta
from cta.mha import MultiHeadAttention
from cta.variants import (
    AddFusion,
    ConcatSelfAttentionAdapter,
    CrossAttentionAdapter,
    CrossAttentionFusion,
    IdentityAdapter,
)

__all__ = [
    "AddFusion",
    "BridgeAdapter",
    "ConcatSelfAttentionAdapter",
    "CrossAttentionAdapter",
    "CrossAttentionFusion",
    "IdentityAdapter",
    "MultiHeadAttention",
    "build_cta",
]
