"""Two-layer projection MLP φ (paper Eq. 1): ``C → r·C → C`` with GELU."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ProjectionMLP"]


class ProjectionMLP(nn.Module):
    """``φ(x) = W₂ · GELU(W₁ x + b₁) + b₂`` applied token-wise to ``[..., C]``.

    Args:
        dim: token width C.
        ratio: hidden width as a multiple of C (4 in the paper).
    """

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C]`` → ``[..., C]``."""
        return self.fc2(self.act(self.fc1(x)))
