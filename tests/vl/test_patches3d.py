"""Eq. 3–4: per-patch world points against hand computations; masks; detached geometry."""

import math

import numpy as np
import pytest
import torch

from vl.patches3d import (
    MLPPositionEmbedding,
    SinCosPositionEmbedding,
    build_position_embedding,
    patch_depth,
    patch_world_points,
)

P = 14


def _rot_z(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


def _camera():
    rot = _rot_z(90) @ np.array([[1, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]])
    ext = np.concatenate([rot, np.array([[1.0], [2.0], [3.0]])], axis=1)
    k = np.array([[50.0, 0, 20.0], [0, 60.0, 13.0], [0, 0, 1]])
    return ext, k


def _eq3(u, v, d, ext, k):
    """Paper Eq. 3 literally: P = R⁻¹ K⁻¹ [u, v, 1]ᵀ d − R⁻¹ t."""
    r_inv = np.linalg.inv(ext[:, :3])
    return r_inv @ np.linalg.inv(k) @ np.array([u, v, 1.0]) * d - r_inv @ ext[:, 3]


def test_eq3_non_square_grid_median_and_invalid():
    ext, k = _camera()
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 5.0, size=(28, 42))  # 2 x 3 patches
    depth[0:14, 14:28][rng.random((14, 14)) < 0.5] = 0.0  # patch (0, 1): half invalid
    depth[14:28, 0:14] = 0.0  # patch (1, 0): no valid pixel
    depth[0, 0] = np.nan
    t = lambda a: torch.tensor(a, dtype=torch.float32)[None, None]
    pts, valid = patch_world_points(t(depth), t(ext), t(k), P, mode="median")
    assert pts.shape == (1, 1, 6, 3) and valid.shape == (1, 1, 6)
    for r in range(2):
        for c in range(3):
            block = depth[r * P : (r + 1) * P, c * P : (c + 1) * P].ravel()
            good = np.sort(block[np.isfinite(block) & (block > 0)])
            idx = r * 3 + c
            if good.size == 0:
                assert not valid[0, 0, idx] and torch.all(pts[0, 0, idx] == 0)
                continue
            d = good[(good.size - 1) // 2]  # lower median
            ref = _eq3(c * P + (P - 1) / 2, r * P + (P - 1) / 2, d, ext, k)
            assert valid[0, 0, idx]
            np.testing.assert_allclose(pts[0, 0, idx].numpy(), ref, rtol=1e-5, atol=1e-5)
    assert valid.sum() == 5


def test_center_mode_and_confidence_mask():
    ext, k = _camera()
    depth = torch.rand(1, 2, 28, 28) * 3 + 1
    conf = torch.full_like(depth, 5.0)
    conf[0, 1, 7, 21] = 1.2  # centre pixel of frame 1, patch (0, 1)
    exts = torch.tensor(ext, dtype=torch.float32).expand(1, 2, 3, 4)
    ks = torch.tensor(k, dtype=torch.float32).expand(1, 2, 3, 3)
    pts, valid = patch_world_points(depth, exts, ks, P, mode="center", confidence=conf, min_confidence=2.0)
    ref = _eq3(14 + 6.5, 14 + 6.5, float(depth[0, 0, 21, 21]), ext, k)
    np.testing.assert_allclose(pts[0, 0, 3].numpy(), ref, rtol=1e-5, atol=1e-5)
    assert valid[0, 0].all() and not valid[0, 1, 1] and valid[0, 1].sum() == 3
    d, ok = patch_depth(depth, P, "median", conf, 2.0)
    assert ok.all() and d.shape == (1, 2, 2, 2)  # other pixels of that patch stay valid


def test_no_gradient_reaches_geometry():
    depth = (torch.rand(1, 1, 28, 28) + 1).requires_grad_()
    ext = torch.eye(3, 4)[None, None].clone().requires_grad_()
    k = torch.tensor([[30.0, 0, 14], [0, 30, 14], [0, 0, 1]])[None, None]
    pts, _ = patch_world_points(depth, ext, k, P)
    emb = MLPPositionEmbedding(8)
    feats = torch.randn(1, 1, 4, 8, requires_grad=True)
    (feats + emb(pts)).sum().backward()
    assert not pts.requires_grad and depth.grad is None and ext.grad is None
    assert feats.grad is not None and emb.fc1.weight.grad is not None


def test_shape_errors():
    with pytest.raises(ValueError, match="multiple of the patch size"):
        patch_depth(torch.ones(1, 1, 20, 28), P)
    with pytest.raises(ValueError, match="extrinsic"):
        patch_world_points(torch.ones(1, 1, 28, 28), torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3), P)


def test_position_embeddings():
    pts = torch.tensor([[0.5, -1.0, 2.0]])
    mlp = build_position_embedding("mlp", 16)
    assert mlp(pts).shape == (1, 16)
    sc = build_position_embedding("sincos", 20)
    assert isinstance(sc, SinCosPositionEmbedding)
    out = sc(pts)[0]
    nf = 20 // 6
    lam = 0.05 * (20.0 / 0.05) ** (np.arange(nf) / (nf - 1))
    ref = np.concatenate(
        [np.concatenate([np.sin(2 * np.pi / lam * x), np.cos(2 * np.pi / lam * x)]) for x in (0.5, -1.0, 2.0)]
    )
    np.testing.assert_allclose(out[: 6 * nf].numpy(), ref, rtol=1e-5, atol=2e-5)
    assert torch.all(out[6 * nf :] == 0)
