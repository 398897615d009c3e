"""The project's single attention backend switch.

All attention in ``recon``, ``cta`` and ``vl`` goes through :func:`attention`, which takes
``q, k, v`` as ``[B, heads, N, head_dim]`` and dispatches to

* ``"sdpa"`` — :func:`torch.nn.functional.scaled_dot_product_attention` (memory-efficient or
  flash kernels where PyTorch has them; never materialises ``N×N`` on those kernels);
* ``"xformers"`` — ``xformers.ops.memory_efficient_attention`` (CUDA tensors only, imported
  lazily so CPU installs never need xformers);
* ``"math"`` — an explicit ``softmax(q kᵀ / √d) v`` reference (tests and debugging only:
  it materialises the attention matrix);
* ``"auto"`` (default) — xformers when the tensors are on CUDA and xformers imports, else SDPA.

The backend is chosen per call (``backend=``), per module, or as the process default:

* every module that calls :func:`attention` (``recon.layers.block.Attention``,
  ``cta.mha.MultiHeadAttention``, the DINOv2 attention of ``recon.encoder.SharedEncoder``) holds an
  ``attention_backend`` attribute (``None`` = the process default) and passes it as ``backend=``;
  :func:`use_attention_backend` sets it on every such submodule of a model (``VidLLM`` does this
  from ``VidLLMConfig.attention_backend``, so two models in one process keep their own backends);
* :func:`set_attention_backend` sets the process default, used by calls and modules whose backend
  is ``None`` (leaf modules built directly, e.g. in tests). Building a model never changes it.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AttentionBackend",
    "BACKENDS",
    "ATTENTION_BACKEND_ATTR",
    "attention",
    "set_attention_backend",
    "get_attention_backend",
    "use_attention_backend",
    "resolve_backend",
    "xformers_available",
]

AttentionBackend = Literal["auto", "sdpa", "xformers", "math"]
"""Backend names (``VidLLMConfig.attention_backend``, ``backend=`` of :func:`attention`)."""
BACKENDS = get_args(AttentionBackend)
_log = logging.getLogger(__name__)
_state = {"backend": "auto"}

ATTENTION_BACKEND_ATTR = "attention_backend"
"""Attribute of the modules that call :func:`attention`: their backend name, ``None`` = the process default."""


def set_attention_backend(name: str) -> None:
    """Set the process-wide default backend (one of :data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; expected one of {BACKENDS}")
    _state["backend"] = name


def get_attention_backend() -> str:
    """The process-wide default backend name."""
    return _state["backend"]


def use_attention_backend(module: nn.Module, name: str | None) -> int:
    """Set the backend of every submodule of ``module`` (itself included) that has an
    ``attention_backend`` attribute; the process default is left alone.

    Args:
        module: a model or any module tree.
        name: one of :data:`BACKENDS`, or ``None`` to make those modules follow the process default.
    Returns:
        how many modules were set.
    Raises:
        ValueError: ``name`` is not one of :data:`BACKENDS` (the message names ``attention_backend``).
    """
    if name is not None and name not in BACKENDS:
        raise ValueError(f"{ATTENTION_BACKEND_ATTR} = {name!r}; expected one of {list(BACKENDS)}")
    count = 0
    for sub in module.modules():
        if hasattr(sub, ATTENTION_BACKEND_ATTR):
            setattr(sub, ATTENTION_BACKEND_ATTR, name)
            count += 1
    return count


@functools.lru_cache(maxsize=1)
def _xformers_ops():
    try:
        import xformers.ops as xops  # optional GPU dependency, imported lazily
    except Exception:  # ImportError, or a broken CUDA build of xformers
        return None
    return xops


def xformers_available() -> bool:
    """Whether ``xformers.ops`` can be imported in this environment."""
    return _xformers_ops() is not None


def resolve_backend(name: str | None, device: torch.device) -> str:
    """The concrete backend (``"sdpa"``, ``"xformers"`` or ``"math"``) used for ``device``.

    ``"xformers"`` falls back to SDPA with a one-time warning when xformers is missing or the
    tensors are not on CUDA, so a config written for a GPU cluster still runs on a laptop.
    """
    name = name or _state["backend"]
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; expected one of {BACKENDS}")
    if name == "auto":
        return "xformers" if device.type == "cuda" and xformers_available() else "sdpa"
    if name == "xformers" and (device.type != "cuda" or not xformers_available()):
        _warn_fallback(device.type)
        return "sdpa"
    return name


@functools.lru_cache(maxsize=4)
def _warn_fallback(device_type: str) -> None:
    _log.warning("attention backend 'xformers' is unavailable on %s; using PyTorch SDPA", device_type)


def _math_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, attn_mask: Tensor | None) -> Tensor:
    logits = (q @ k.transpose(-1, -2)) * scale
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float("-inf"))
        else:
            logits = logits + attn_mask
    return logits.softmax(dim=-1) @ v


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    scale: float | None = None,
    backend: str | None = None,
) -> Tensor:
    """Multi-head scaled dot-product attention through the configured backend.

    Args:
        q: ``[B, heads, Nq, D]``; k, v: ``[B, heads, Nk, D]``.
        attn_mask: optional mask broadcastable to ``[B, heads, Nq, Nk]``: boolean (True = keep)
            or additive float.
        scale: logit scale, default ``1/√D``.
        backend: overrides the process-wide default for this call (``None`` = the default); modules
            pass their ``attention_backend`` attribute here.
    Returns:
        ``[B, heads, Nq, D]``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    chosen = resolve_backend(backend, q.device)
    if chosen == "xformers":
        xops = _xformers_ops()
        bias = None
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                bias = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                    ~attn_mask, float("-inf")
                )
            else:
                bias = attn_mask.to(q.dtype)
            bias = bias.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        out = xops.memory_efficient_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias, scale=scale
        )
        return out.transpose(1, 2)
    if chosen == "math":
        return _math_attention(q, k, v, scale, attn_mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
