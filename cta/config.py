"""Typed configuration of the Cross-Task Adapter and its fusion variants (paper Eq. 1–2)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, get_args

from recon.choices import check_choice

CTAMode = Literal["bridge", "none", "concat_sa", "cross_attn", "add", "xattn_fusion"]
"""Adapter variants (see :attr:`CTAConfig.mode`)."""
DeprecatedCTAMode = Literal["passthrough"]
"""Deprecated mode names, still accepted in configs (the keys of :data:`CTA_MODE_ALIASES`)."""
CTAScope = Literal["clip", "frame"]
"""Extent of the bridge attention (see :attr:`CTAConfig.scope`)."""
CTA_MODES = get_args(CTAMode)
CTA_MODE_ALIASES = {"passthrough": "none"}
"""Deprecated mode names → the mode they map to at validation (with a ``FutureWarning``).
'passthrough' (the VGGT-parity setting) always built the same parameter-free adapter as 'none'."""
CTA_SCOPES = get_args(CTAScope)


@dataclass
class CTAConfig:
    """Cross-Task Adapter: φ_geom / φ_lang MLPs and K bridge tokens (paper Eq. 1–2)."""

    mode: Literal[CTAMode, DeprecatedCTAMode] = "bridge"
    """Variant: 'bridge' (the paper), 'none' (no adapter, the "w/o CTA" ablation: T'_geom = T'_lang = T_base exactly, so the geometry branch sees what VGGT sees), 'concat_sa', 'cross_attn', 'add' (VG-LLM-style), 'xattn_fusion' (VLM-3R-style). 'passthrough' is a deprecated alias of 'none'."""
    num_bridge_tokens: int = 16
    """Number K of learnable bridge tokens."""
    num_heads: int = 16
    """Heads of the adapter's multi-head attentions."""
    mlp_ratio: float = 4.0
    """Hidden width of φ_geom / φ_lang as a multiple of C."""
    scope: CTAScope = "clip"
    """Bridge attention over the whole clip ('clip') or each frame separately ('frame')."""
    geometry_dim: int = 0
    """Channels Cg of the external geometry tokens given to 'add' / 'xattn_fusion' (0 = the token width C)."""
    identity_init: bool = False
    """Start the adapter as the identity (T'_geom = T'_lang = T_base at init): φ_geom / φ_lang become residual MLPs with a zero last layer and the residual attention read-backs start with a zero output projection ('bridge', 'concat_sa', 'cross_attn'). A tiny-scale option (stage 2 then starts from the teacher-initialised geometry); the paper's φ is a plain MLP (Eq. 1), so off by default."""

    def __post_init__(self) -> None:
        if self.mode in CTA_MODE_ALIASES:
            canonical = CTA_MODE_ALIASES[self.mode]
            warnings.warn(
                f"cta.mode = {self.mode!r} is a deprecated alias of {canonical!r} (the same parameter-free adapter, "
                f"T'_geom = T'_lang = T_base); set cta.mode: {canonical} instead",
                FutureWarning,
                stacklevel=3,
            )
            self.mode = canonical
        check_choice("cta.mode", self.mode, CTAMode)
        check_choice("cta.scope", self.scope, CTAScope)
        if self.num_bridge_tokens <= 0:
            raise ValueError(f"cta.num_bridge_tokens must be > 0, got {self.num_bridge_tokens}")
        if self.num_heads <= 0 or self.mlp_ratio <= 0:
            raise ValueError(f"cta.num_heads and cta.mlp_ratio must be > 0, got {self.num_heads}, {self.mlp_ratio}")
        if self.geometry_dim < 0:
            raise ValueError(f"cta.geometry_dim must be >= 0 (0 = token width), got {self.geometry_dim}")
