"""AdamW with per-module learning rates, and the warm-up + cosine schedule (README "Training").

Parameters are grouped by the module path that sets their learning rate: ``TrainConfig.lr_multipliers``
maps dotted module paths (``encoder``, ``vl.lm.model``, ``vl.lm.projector``, ``vl.pos_embed``, …) to
multipliers of the base rate, and a parameter takes the multiplier of the longest path that is a
prefix of its name (whole components only); parameters matched by no path form a group per
top-level module at the base rate. Biases, normalisation weights and learned tokens/embeddings (1-D parameters and names
containing ``token``) get no weight decay. Frozen parameters are left out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["param_groups", "build_optimizer", "warmup_cosine", "build_scheduler", "module_prefixes", "match_multiplier"]


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or "token" in name or name.endswith(".bias")


def module_prefixes(model: nn.Module, max_depth: int = 3) -> list[str]:
    """Dotted module paths (up to ``max_depth`` components, no numbered block indices) that prefix a parameter name."""
    out = set()
    for name, _ in model.named_parameters():
        parts = name.split(".")[:-1]
        for depth in range(1, min(max_depth, len(parts)) + 1):
            if parts[depth - 1].isdigit():
                break
            out.add(".".join(parts[:depth]))
    return sorted(out)


def match_multiplier(name: str, paths) -> str | None:
    """The longest of ``paths`` that is ``name`` or a prefix of it ending at a ``.``; None if none is."""
    best = None
    for path in paths:
        if (name == path or name.startswith(path + ".")) and (best is None or len(path) > len(best)):
            best = path
    return best


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, lr_multipliers: dict[str, float] | None = None
) -> list[dict]:
    """Optimizer parameter groups keyed by (learning-rate path, decay/no-decay).

    Args:
        model: the module whose trainable parameters are grouped.
        lr: base learning rate.
        weight_decay: AdamW weight decay for matrices.
        lr_multipliers: ``{dotted module path: multiplier}`` (``encoder``, ``vl.lm.model``); the longest
            matching path wins; a path that prefixes no parameter is an error naming it and the valid paths.
    Returns:
        a list of dicts with ``params``, ``lr``, ``weight_decay`` and ``name`` (the path, ``/no_decay`` appended).
    """
    lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
    names = [name for name, _ in model.named_parameters()]
    unknown = sorted(k for k in lr_multipliers if not any(n == k or n.startswith(k + ".") for n in names))
    if unknown:
        raise ValueError(
            f"train.lr_multipliers names unknown module path(s) {unknown}; valid dotted prefixes include {module_prefixes(model)}"
        )
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        path = match_multiplier(name, lr_multipliers)
        key_name = path if path is not None else name.split(".", 1)[0]
        no_decay = _no_decay(name, param)
        key = (key_name, no_decay)
        if key not in groups:
            groups[key] = {
                "name": f"{key_name}{'/no_decay' if no_decay else ''}",
                "params": [],
                "lr": lr * (lr_multipliers[path] if path is not None else 1.0),
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
        groups[key]["params"].append(param)
    return list(groups.values())


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float = 0.05, betas=(0.9, 0.999), lr_multipliers=None
) -> torch.optim.AdamW:
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
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, min_ratio)
    )
