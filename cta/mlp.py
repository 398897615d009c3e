"""Two-layer projection MLP φ (paper Eq. 1): ``C → r·C → C`` with GELU, optionally residual."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ProjectionMLP"]


class ProjectionMLP(nn.Module):
    """``φ(x) = W₂ · GELU(W₁ x + b₁) + b₂`` applied token-wise to ``[..., C]``.

    With ``residual=True`` (``cta.identity_init``, a tiny-scale option; the paper's φ is the plain
    MLP) it is ``φ(x) = x + W₂ · GELU(W₁ x + b₁) + b₂`` with ``W₂ = 0, b₂ = 0`` at initialisation,
    so ``φ(x) = x`` exactly until training moves ``W₂``.

    Args:
        dim: token width C.
        ratio: hidden width as a multiple of C (4 in the paper).
        residual: identity path plus a zero-initialised MLP branch.
    """

    def __init__(self, dim: int, ratio: float = 4.0, residual: bool = False) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.residual = residual
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        if residual:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C]`` → ``[..., C]``."""
        y = self.fc2(self.act(self.fc1(x)))
        return x + y if self.residual else y
