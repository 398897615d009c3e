"""Real-scale alignment: known scale recovery, confidence-weighted outliers, degenerate frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.alignment import apply_scene_scale, per_frame_scales, real_scale_alignment, sample_alignment_frames
from recon.geometry import depth_to_world_points


def _scene(b=2, s=20, h=12, w=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rel = torch.rand(b, s, h, w, generator=gen) * 3 + 0.2
    return rel, gen


def test_weighted_ls_matches_numpy():
    rel, gen = _scene(b=1, s=3)
    metric = rel * 2.0 + torch.randn(rel.shape, generator=gen) * 0.3
    conf = 1 + torch.rand(rel.shape, generator=gen) * 4
    scales, ok = per_frame_scales(rel, metric, conf, min_valid_pixels=1)
    r, m, c = rel.double().numpy(), metric.double().numpy(), conf.double().numpy()
    valid = m > 0
    ref = ((c * r * m * valid).sum((-1, -2))) / ((c * r * r * valid).sum((-1, -2)))
    np.testing.assert_allclose(scales.numpy(), ref, rtol=1e-12)
    assert ok.all() and scales.dtype == torch.float64


def test_recovers_known_scale():
    rel, gen = _scene()
    true = torch.tensor([0.37, 4.2])
    metric = rel * true.view(-1, 1, 1, 1) * (1 + 0.01 * torch.randn(rel.shape, generator=gen))
    conf = 1 + torch.rand(rel.shape, generator=gen)
    res = real_scale_alignment(rel, metric, conf)
    np.testing.assert_allclose(res.scale.numpy(), true.double().numpy(), rtol=5e-3)
    assert res.valid.all() and res.sampled.numel() == 16 and res.frame_scales.shape == (2, 20)
    assert res.scale.dtype == torch.float64


def test_outliers_are_down_weighted_by_confidence():
    rel, gen = _scene(b=1, s=8, h=20, w=20)
    metric = rel * 2.5
    outlier = torch.rand(rel.shape, generator=gen) < 0.3
    metric = torch.where(outlier, metric * (3 + 5 * torch.rand(rel.shape, generator=gen)), metric)
    conf = torch.where(outlier, torch.full_like(rel, 1e-4), torch.full_like(rel, 10.0))
    weighted = real_scale_alignment(rel, metric, conf).scale.item()
    uniform = real_scale_alignment(rel, metric, None).scale.item()
    assert abs(weighted - 2.5) / 2.5 < 1e-3
    assert abs(uniform - 2.5) / 2.5 > 0.5  # without confidence the outliers dominate


def test_degenerate_frames_are_skipped_and_no_valid_frame_gives_one():
    rel, gen = _scene(b=2, s=6)
    metric = rel * 3.0
    metric[0, :2] = 0.0  # no metric depth at all
    rel[0, 2, :, :] = float("nan")  # broken relative depth
    metric[0, 3, 1:] = 0.0  # too few valid pixels (10 < 16)
    metric[1] = 0.0  # whole clip invalid
    res = real_scale_alignment(rel, metric, torch.ones_like(rel))
    assert res.frame_valid[0].tolist() == [False, False, False, False, True, True]
    assert torch.isnan(res.frame_scales[0, :4]).all()
    np.testing.assert_allclose(res.scale[0].item(), 3.0, rtol=1e-6)
    assert res.valid.tolist() == [True, False] and res.scale[1].item() == 1.0
    assert torch.isfinite(res.scale).all()


def test_median_over_sampled_frames_and_determinism():
    idx = sample_alignment_frames(40, 16, seed=3)
    assert torch.equal(idx, sample_alignment_frames(40, 16, seed=3))
    assert idx.numel() == 16 and torch.unique(idx).numel() == 16 and (idx[1:] > idx[:-1]).all()
    torch.manual_seed(123)
    assert torch.equal(idx, sample_alignment_frames(40, 16, seed=3))  # global RNG does not matter
    assert torch.equal(sample_alignment_frames(5, 16), torch.arange(5))
    rel = torch.ones(1, 40, 4, 4)
    per_frame = torch.arange(1, 41, dtype=torch.float32)
    metric = rel * per_frame.view(1, -1, 1, 1)
    res = real_scale_alignment(rel, metric, None, num_frames=16, seed=3, min_valid_pixels=1)
    expected = np.median(per_frame.numpy()[idx.numpy()])
    np.testing.assert_allclose(res.scale.item(), expected)
    np.testing.assert_allclose(res.frame_scales[0].numpy(), per_frame.numpy())


def test_no_gradient_and_apply_scale():
    rel = (torch.rand(1, 3, 6, 6) + 0.5).requires_grad_()
    res = real_scale_alignment(rel, rel.detach() * 2, None, min_valid_pixels=1)
    assert not res.scale.requires_grad
    extr = torch.cat([torch.eye(3).expand(1, 3, 3, 3), torch.randn(1, 3, 3, 1)], dim=-1)
    intr = torch.tensor([[5.0, 0, 3], [0, 5.0, 3], [0, 0, 1]]).expand(1, 3, 3, 3)
    pose = torch.randn(1, 3, 9)
    pts = depth_to_world_points(rel, extr, intr)
    out = apply_scene_scale(res.scale, depth=rel, extrinsics=extr, pose_enc=pose, world_points=pts)
    torch.testing.assert_close(out["depth"], rel * 2)
    torch.testing.assert_close(out["extrinsics"][..., :3], extr[..., :3])
    torch.testing.assert_close(out["extrinsics"][..., 3], extr[..., 3] * 2)
    torch.testing.assert_close(out["pose_enc"][..., :3], pose[..., :3] * 2)
    torch.testing.assert_close(out["pose_enc"][..., 3:], pose[..., 3:])
    # scaled depth + scaled extrinsics unproject to the scaled world points
    torch.testing.assert_close(
        depth_to_world_points(out["depth"], out["extrinsics"], intr), out["world_points"], atol=1e-5, rtol=1e-5
    )
    out["depth"].sum().backward()
    torch.testing.assert_close(rel.grad, torch.full_like(rel, 2.0))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[B, S, H, W\]"):
        real_scale_alignment(torch.ones(3, 4, 4), torch.ones(3, 4, 4))
    with pytest.raises(ValueError, match="differ in shape"):
        real_scale_alignment(torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 5))
