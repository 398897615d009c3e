"""VGGT key layout: the key tables and the branch ↔ VGGT state-dict conversion.

Split out of :mod:`recon.vggt_loader` so that :class:`recon.model.ReconstructionModel` (whose
``vggt_state_dict`` writes this layout) and the loader (which builds a ``ReconstructionModel``)
both import it and neither imports the other. Every name here stays importable from
:mod:`recon.vggt_loader`; see that module for the layout itself.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

SKIPPED_HEADS = ("point_head.", "track_head.")
RELATIVE_POSE_PREFIX = "camera_head.relative_pose."
"""Key prefix of the optional patch-grid relative-pose module (``recon.camera_head.relative_pose``); not a VGGT key."""
BRANCH_PARTS = ("encoder", "aggregator", "camera_head", "depth_head")
_DINO = "aggregator.patch_embed."
_DINO_PLAIN = {
    "cls_token": "embeddings.cls_token",
    "mask_token": "embeddings.mask_token",
    "register_tokens": "embeddings.register_tokens",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_DINO_BLOCK = {
    "norm1": "norm1",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
}
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


# --------------------------------------------------------------------------- key mapping
def _hf_attention_names(encoder: nn.Module) -> tuple[str, str, str, str]:
    """Names of q, k, v, out projections inside a transformers DINOv2 layer (version dependent)."""
    names = {n for n, _ in encoder.named_parameters()}
    if any(".attention.q_proj." in n for n in names):
        return "attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"
    return "attention.attention.query", "attention.attention.key", "attention.attention.value", "attention.output.dense"


def branch_parts(model: nn.Module, parts: dict[str, nn.Module] | None = None) -> dict[str, nn.Module]:
    """The four modules VGGT weights go into: ``parts`` if given (e.g. from the full VidLLM model,
    keys ``encoder, aggregator, camera_head, depth_head``), else the attributes of ``model`` with those names."""
    if parts is None:
        missing = [p for p in BRANCH_PARTS if not isinstance(getattr(model, p, None), nn.Module)]
        if missing:
            raise ValueError(
                f"VGGT loading: model has no submodules {missing}; pass parts={{name: module}} for {list(BRANCH_PARTS)}"
            )
        return {p: getattr(model, p) for p in BRANCH_PARTS}
    if sorted(parts) != sorted(BRANCH_PARTS):
        raise ValueError(f"VGGT loading: parts must have exactly the keys {list(BRANCH_PARTS)}, got {sorted(parts)}")
    return dict(parts)


def vggt_to_branch(sd: dict[str, Tensor], encoder: nn.Module) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """VGGT keys → branch keys (``encoder.*``, ``aggregator.*``, ...) for the given shared encoder.

    ``encoder`` may also be a module holding the shared encoder as ``.encoder``.
    Returns (converted, unused VGGT keys, skipped head keys)."""
    if not hasattr(encoder, "kind") and isinstance(getattr(encoder, "encoder", None), nn.Module):
        encoder = encoder.encoder
    qn, kn, vn, on = _hf_attention_names(encoder)
    conv = getattr(encoder, "kind", "dinov2") == "conv"
    out: dict[str, Tensor] = {}
    unused, skipped = [], []
    for key, val in sd.items():
        if key.startswith(SKIPPED_HEADS):
            skipped.append(key)
        elif key.startswith(_DINO):
            sub = key[len(_DINO) :]
            if conv:
                if sub.startswith("proj."):
                    out["encoder.patch_embed." + sub[len("proj.") :]] = val
                else:
                    unused.append(key)
                continue
            if sub in _DINO_PLAIN:
                out["encoder.model." + _DINO_PLAIN[sub]] = val
                continue
            m = _BLOCK_RE.match(sub)
            if not m:
                unused.append(key)
                continue
            i, rest = m.groups()
            base = f"encoder.model.encoder.layer.{i}."
            name, _, leaf = rest.rpartition(".")
            if name == "attn.qkv":
                for part, chunk in zip((qn, kn, vn), val.chunk(3, dim=0)):
                    out[f"{base}{part}.{leaf}"] = chunk
            elif name == "attn.proj":
                out[f"{base}{on}.{leaf}"] = val
            elif rest in _DINO_BLOCK:
                out[base + _DINO_BLOCK[rest]] = val
            elif name in _DINO_BLOCK:
                out[f"{base}{_DINO_BLOCK[name]}.{leaf}"] = val
            else:
                unused.append(key)
        elif key.startswith(("aggregator.", "camera_head.", "depth_head.")):
            out[key] = val
        else:
            unused.append(key)
    return out, unused, skipped


def to_vggt_state_dict(model: nn.Module | None = None, parts: dict[str, nn.Module] | None = None) -> dict[str, Tensor]:
    """The branch (``encoder``, ``aggregator``, ``camera_head``, ``depth_head``) in VGGT key layout."""
    parts = branch_parts(model, parts)
    qn, kn, vn, on = _hf_attention_names(parts["encoder"])
    inv_plain = {v: k for k, v in _DINO_PLAIN.items()}
    inv_block = {v: k for k, v in _DINO_BLOCK.items()}
    out: dict[str, Tensor] = {}
    for part in ("aggregator", "camera_head", "depth_head"):
        for k, v in parts[part].state_dict().items():
            out[f"{part}.{k}"] = v
    enc = parts["encoder"].state_dict()
    if getattr(parts["encoder"], "kind", "dinov2") == "conv":
        for k, v in enc.items():
            out[_DINO + "proj." + k.removeprefix("patch_embed.")] = v
        return out
    layer_re = re.compile(r"^model\.encoder\.layer\.(\d+)\.(.+)$")
    for k, v in enc.items():
        sub = k.removeprefix("model.")
        if sub in inv_plain:
            out[_DINO + inv_plain[sub]] = v
            continue
        m = layer_re.match(k)
        if not m:
            raise ValueError(f"to_vggt_state_dict: encoder parameter {k!r} has no VGGT counterpart")
        i, rest = m.groups()
        name, _, leaf = rest.rpartition(".")
        base = f"{_DINO}blocks.{i}."
        if name == qn:
            out[f"{base}attn.qkv.{leaf}"] = torch.cat(
                [v, enc[f"model.encoder.layer.{i}.{kn}.{leaf}"], enc[f"model.encoder.layer.{i}.{vn}.{leaf}"]], 0
            )
        elif name in (kn, vn):
            continue
        elif name == on:
            out[f"{base}attn.proj.{leaf}"] = v
        elif rest in inv_block:
            out[base + inv_block[rest]] = v
        elif name in inv_block:
            out[f"{base}{inv_block[name]}.{leaf}"] = v
        else:
            raise ValueError(f"to_vggt_state_dict: encoder parameter {k!r} has no VGGT counterpart")
    return out
