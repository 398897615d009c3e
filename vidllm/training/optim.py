"""AdamW with per-module learning rates, and the warm-up + cosine schedule (DESIGN §6).

Parameters are grouped by the first component of their name (``encoder``, ``cta``, ``recon``,
``metric_depth``, ``vl``, ``llm``, …); ``TrainConfig.lr_multipliers`` scales the base rate per
group. Biases, normalisation weights and learned tokens/embeddings (1-D parameters and names
containing ``token``) get no weight decay. Frozen parameters are left out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["param_groups", "build_optimizer", "warmup_cosine", "build_scheduler"]


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or "token" in name or name.endswith(".bias")


def param_groups(model: nn.Module, lr: float, weight_decay: float, lr_multipliers: dict[str, float] | None = None) -> list[dict]:
    """Optimizer parameter groups keyed by (top-level module, decay/no-decay).

    Args:
        model: the module whose trainable parameters are grouped.
        lr: base learning rate.
        weight_decay: AdamW weight decay for matrices.
        lr_multipliers: ``{top-level module name: multiplier}``; unknown names are an error.
    Returns:
        a list of dicts with ``params``, ``lr``, ``weight_decay`` and ``name``.
    """
    lr_multipliers = dict(lr_multipliers or {})
    top_names = {name.split(".", 1)[0] for name, _ in model.named_parameters()}
    unknown = sorted(set(lr_multipliers) - top_names)
    if unknown:
        raise ValueError(f"train.lr_multipliers names unknown module(s) {unknown}; the model has {sorted(top_names)}")
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        top = name.split(".", 1)[0]
        no_decay = _no_decay(name, param)
        key = (top, no_decay)
        if key not in groups:
            groups[key] = {
                "name": f"{top}{'/no_decay' if no_decay else ''}",
                "params": [],
                "lr": lr * lr_multipliers.get(top, 1.0),
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
        groups[key]["params"].append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05, betas=(0.9, 0.999), lr_multipliers=None) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (raises if nothing is trainable)."""
    groups = param_groups(model, lr, weight_decay, lr_multipliers)
    if not groups:
        raise ValueError("no trainable parameters: every module is frozen for this stage")
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up from ``1/warmup`` to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """A per-step ``LambdaLR`` applying :func:`warmup_cosine` to every group."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, min_ratio))
