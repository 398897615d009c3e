"""Token grouping for the adapter's attention scope: the whole clip or each frame."""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_tokens", "group_tokens", "ungroup_tokens"]


def check_tokens(t_base: Tensor, dim: int, name: str = "T_base") -> None:
    """Raise a ValueError unless ``t_base`` is ``[B, S, P, dim]``."""
    if t_base.ndim != 4 or t_base.shape[-1] != dim:
        raise ValueError(f"cta: {name} must be [B, S, P, {dim}], got {tuple(t_base.shape)}")


def group_tokens(x: Tensor, scope: str) -> Tensor:
    """``[B, S, P, C]`` → ``[B, S·P, C]`` (scope 'clip') or ``[B·S, P, C]`` (scope 'frame').

    Frame scope folds frames into the batch, so per-frame attention runs as one batched call.
    """
    b, s, p, c = x.shape
    if scope == "clip":
        return x.reshape(b, s * p, c)
    if scope == "frame":
        return x.reshape(b * s, p, c)
    raise ValueError(f"cta.scope = {scope!r}; expected 'clip' or 'frame'")


def ungroup_tokens(x: Tensor, shape: tuple[int, int, int, int]) -> Tensor:
    """Inverse of :func:`group_tokens`: back to ``shape = (B, S, P, C)``."""
    return x.reshape(shape)
