"""Voxel pooling: hand case, determinism, the cap keeps the most-populated voxels, empty input."""

import torch

from vl.pooling import voxel_pool


def test_hand_case_means():
    pts = torch.tensor([[[0.1, 0.1, 0.1], [0.2, 0.3, 0.1], [1.1, 0.1, 0.1], [0.3, 0.2, 0.4], [5, 5, 5]]])
    feats = torch.tensor([[[1.0], [2.0], [10.0], [3.0], [99.0]]])
    valid = torch.tensor([[True, True, True, True, False]])
    out = voxel_pool(feats, pts, valid, voxel_size=0.5, max_tokens=10)
    assert out["mask"].tolist() == [[True, True]]
    assert out["counts"].tolist() == [[3, 1]]
    torch.testing.assert_close(out["features"], torch.tensor([[[2.0], [10.0]]]))
    torch.testing.assert_close(out["points"][0, 0], torch.tensor([0.2, 0.2, 0.2]))


def test_determinism_and_order_invariance():
    torch.manual_seed(0)
    feats, pts = torch.randn(2, 300, 8), torch.rand(2, 300, 3) * 2
    valid = torch.rand(2, 300) > 0.1
    a = voxel_pool(feats, pts, valid, 0.4, 20)
    b = voxel_pool(feats, pts, valid, 0.4, 20)
    for k in a:
        assert torch.equal(a[k], b[k])
    perm = torch.randperm(300)
    c = voxel_pool(feats[:, perm], pts[:, perm], valid[:, perm], 0.4, 20)
    assert torch.equal(a["counts"], c["counts"])
    torch.testing.assert_close(a["features"], c["features"])


def test_cap_keeps_most_populated():
    # voxel A: 5 tokens, voxel B: 1 token, voxel C: 3 tokens  -> cap 2 keeps A and C
    pts = torch.tensor([[0.1, 0, 0]] * 5 + [[1.1, 0, 0]] + [[2.1, 0, 0]] * 3)[None]
    feats = torch.arange(9, dtype=torch.float32)[None, :, None]
    out = voxel_pool(feats, pts, torch.ones(1, 9, dtype=torch.bool), 1.0, 2)
    assert out["counts"].tolist() == [[5, 3]]
    torch.testing.assert_close(out["features"][0, :, 0], torch.tensor([2.0, 7.0]))


def test_variable_counts_padding_and_empty():
    feats, pts = torch.randn(2, 10, 4), torch.rand(2, 10, 3)
    valid = torch.zeros(2, 10, dtype=torch.bool)
    valid[0, :3] = True
    out = voxel_pool(feats, pts, valid, 10.0, 5)
    assert out["mask"].tolist() == [[True], [False]]
    empty = voxel_pool(feats, pts, torch.zeros(2, 10, dtype=torch.bool), 0.2, 5)
    assert empty["features"].shape == (2, 1, 4) and not empty["mask"].any()


def test_gradient_flows_to_features():
    feats = torch.randn(1, 6, 3, requires_grad=True)
    out = voxel_pool(feats, torch.rand(1, 6, 3), torch.ones(1, 6, dtype=torch.bool), 0.5, 3)
    out["features"].sum().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
