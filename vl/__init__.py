"""Vision–language branch: 3D patch lifting, token pooling, LLM wrapper, prompts, grounding, VL losses.

The heavy modules (transformers, peft) load on first use: ``from vl import VLBranch`` works, but
``import vl.config`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VLBranch": "vl.branch",
    "LanguageModel": "vl.llm",
    "build_tiny_causal_lm": "vl.llm",
    "GroundingHead": "vl.grounding_head",
    "patch_world_points": "vl.patches3d",
    "voxel_pool": "vl.pooling",
    "build_word_tokenizer": "vl.tokenizer",
    "render_prompt": "vl.prompts",
    "render_prompts": "vl.prompts",
    "combine_vl_losses": "vl.losses",
    "GeoAuxHeads": "vl.geo_aux",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vl' has no attribute {name!r}")
