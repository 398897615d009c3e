"""2D RoPE and token positions against a direct rotation computation."""

import math

import numpy as np
import torch

from recon.layers.rope import RotaryEmbedding2D, patch_positions


def _direct_rotation(x: np.ndarray, pos: np.ndarray, base: float) -> np.ndarray:
    """x [N, D]; each half (y, then x) rotates pairs (j, j + D/4) by angle p·base^(−2j/(D/2))."""
    n, d = x.shape
    half, quarter = d // 2, d // 4
    out = x.copy()
    for t in range(n):
        for axis in range(2):
            for j in range(quarter):
                theta = pos[t, axis] * base ** (-2.0 * j / half)
                rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
                i0, i1 = axis * half + j, axis * half + j + quarter
                out[t, [i0, i1]] = rot @ x[t, [i0, i1]]
    return out


def test_rope_matches_direct_rotation():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 16, dtype=torch.float64)
    pos = patch_positions(2, 3, 5)[None].expand(2, -1, -1)
    out = RotaryEmbedding2D(100.0)(x, pos).numpy()
    for b in range(2):
        for h in range(3):
            np.testing.assert_allclose(
                out[b, h], _direct_rotation(x[b, h].numpy(), pos[b].numpy(), 100.0), rtol=1e-6, atol=1e-7
            )  # tables in fp32 as VGGT


def test_rope_scores_depend_only_on_offsets():
    torch.manual_seed(1)
    rope = RotaryEmbedding2D(100.0)
    q, k = torch.randn(1, 1, 1, 8, dtype=torch.float64), torch.randn(1, 1, 1, 8, dtype=torch.float64)

    def score(pq, pk):
        return (rope(q, torch.tensor([[pq]])) * rope(k, torch.tensor([[pk]]))).sum().item()

    assert math.isclose(score((3, 5), (1, 2)), score((7, 9), (5, 6)), rel_tol=1e-6)
    assert not math.isclose(score((3, 5), (1, 2)), score((3, 5), (2, 2)), rel_tol=1e-3)


def test_patch_positions_offset_and_special_tokens():
    pos = patch_positions(2, 3, 5)
    assert pos.shape == (11, 2)
    assert pos[:5].abs().sum() == 0
    assert pos[5:].tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]


def test_rope_rejects_bad_head_dim():
    import pytest

    with pytest.raises(ValueError, match="divisible by 4"):
        RotaryEmbedding2D()(torch.randn(1, 1, 2, 6), torch.zeros(1, 2, 2, dtype=torch.long))
