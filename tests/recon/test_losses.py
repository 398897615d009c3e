"""Reconstruction losses and L_MD against independent NumPy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.config import ReconLossConfig
from recon.geometry import extri_intri_to_pose_encoding, quat_to_mat
from recon.losses import (
    ReconLoss,
    camera_loss,
    depth_loss,
    gradient_loss_multiscale,
    metric_depth_loss,
    normalize_gt_scene,
    point_loss,
    points_from_prediction,
)

CLAMP = 100.0


# --------------------------------------------------------------------------- NumPy references
def np_camera_loss(preds, gt, mask, decay=0.6, fov_w=0.5):
    n = len(preds)
    parts = {"T": slice(0, 3), "R": slice(3, 7), "F": slice(7, 9)}
    out = {}
    for key, sl in parts.items():
        acc = 0.0
        for i, p in enumerate(preds):
            acc += decay ** (n - 1 - i) * np.minimum(np.abs(p[mask][:, sl] - gt[mask][:, sl]), CLAMP).mean()
        out[key] = acc / n
    return out["T"] + out["R"] + fov_w * out["F"], out


def np_gradient_term(pred, gt, valid, conf, scales, gamma, alpha):
    """Explicit loops over pixel pairs: pred/gt [N,H,W,C], valid [N,H,W], conf [N,H,W] or None."""
    total = 0.0
    for s in range(scales):
        st = 2**s
        p, g, m = pred[:, ::st, ::st], gt[:, ::st, ::st], valid[:, ::st, ::st]
        c = None if conf is None else conf[:, ::st, ::st]
        count = m.sum()
        if count == 0:
            continue
        acc = 0.0
        n, h, w = m.shape
        for b in range(n):
            for y in range(h):
                for x in range(w):
                    for dy, dx in ((1, 0), (0, 1)):
                        y2, x2 = y + dy, x + dx
                        if y2 >= h or x2 >= w or not (m[b, y, x] and m[b, y2, x2]):
                            continue
                        e1 = p[b, y, x] - g[b, y, x]
                        e2 = p[b, y2, x2] - g[b, y2, x2]
                        gval = np.minimum(np.abs(e2 - e1), CLAMP).mean()
                        if c is None:
                            acc += gval
                        else:
                            acc += gamma * c[b, y2, x2] * gval - alpha * np.log(c[b, y2, x2])
        total += acc / count
    return total / scales


def np_regression(pred, gt, valid, conf, gamma, alpha):
    r = np.minimum(np.linalg.norm(pred[valid] - gt[valid], axis=-1), CLAMP)
    reg = r.mean()
    confl = (gamma * r * conf[valid] - alpha * np.log(conf[valid])).mean()
    return confl, reg


def np_lmd(pred, gt, valid, alpha, eps):
    vals = []
    for p, g, m in zip(
        pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:]), valid.reshape(-1, *valid.shape[-2:])
    ):
        if m.sum() == 0:
            continue
        e = np.log(p[m] + eps) - np.log(g[m] + eps)
        b = e.mean()
        vals.append(b**2 + np.mean((e - b) ** 2 / (1 + alpha * np.abs(e - b))))
    return np.mean(vals)


# --------------------------------------------------------------------------- camera
def test_camera_loss_matches_numpy():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(2, 5, 9))
    preds = [gt + rng.normal(size=gt.shape) * (4 - i) for i in range(4)]
    mask = rng.uniform(size=(2, 5)) > 0.3
    out = camera_loss([torch.tensor(p) for p in preds], torch.tensor(gt), torch.tensor(mask))
    ref, parts = np_camera_loss(preds, gt, mask)
    np.testing.assert_allclose(out["loss_camera"].item(), ref, rtol=1e-5)
    np.testing.assert_allclose(out["loss_T"].item(), parts["T"], rtol=1e-5)
    np.testing.assert_allclose(out["loss_FoV"].item(), parts["F"], rtol=1e-5)


def test_camera_loss_stage_weighting_hand_case():
    gt = torch.zeros(1, 1, 9)
    errors = [1.0, 2.0, 3.0, 4.0]  # stage i has |error| errors[i] on every translation component only
    preds = [torch.cat([torch.full((1, 1, 3), e), torch.zeros(1, 1, 6)], dim=-1) for e in errors]
    out = camera_loss(preds, gt)
    # weights 0.6^3, 0.6^2, 0.6, 1 → (0.216·1 + 0.36·2 + 0.6·3 + 1·4) / 4 = 1.684
    assert out["loss_T"].item() == pytest.approx(1.684, rel=1e-6)
    assert out["loss_R"].item() == 0.0 and out["loss_camera"].item() == pytest.approx(1.684, rel=1e-6)
    fov_only = [torch.cat([torch.zeros(1, 1, 7), torch.full((1, 1, 2), 2.0)], dim=-1)]
    assert camera_loss(fov_only, gt)["loss_camera"].item() == pytest.approx(0.5 * 2.0)


# --------------------------------------------------------------------------- depth / points
@pytest.mark.parametrize("scales", [1, 3])
def test_depth_loss_matches_numpy(scales):
    rng = np.random.default_rng(scales)
    b, s, h, w = 1, 2, 9, 7
    gt = rng.uniform(0.5, 4, size=(b, s, h, w))
    gt[rng.uniform(size=gt.shape) < 0.25] = 0.0
    pred = gt + rng.normal(size=gt.shape)
    conf = 1 + np.exp(rng.normal(size=gt.shape))
    gamma, alpha = 1.3, 0.2
    out = depth_loss(
        torch.tensor(pred),
        torch.tensor(conf),
        torch.tensor(gt),
        gamma=gamma,
        alpha=alpha,
        gradient_weight=0.7,
        gradient_scales=scales,
    )
    valid = gt > 0
    confl, reg = np_regression(pred[..., None], gt[..., None], valid, conf, gamma, alpha)
    grad = np_gradient_term(
        pred.reshape(-1, h, w, 1),
        gt.reshape(-1, h, w, 1),
        valid.reshape(-1, h, w),
        conf.reshape(-1, h, w),
        scales,
        gamma,
        alpha,
    )
    np.testing.assert_allclose(out["loss_conf_depth"].item(), confl, rtol=1e-5)
    np.testing.assert_allclose(out["loss_reg_depth"].item(), reg, rtol=1e-5)
    np.testing.assert_allclose(out["loss_grad_depth"].item(), grad, rtol=1e-5)
    np.testing.assert_allclose(out["loss_depth"].item(), confl + reg + 0.7 * grad, rtol=1e-5)


def test_gradient_term_without_confidence_matches_numpy():
    rng = np.random.default_rng(7)
    pred, gt = rng.normal(size=(2, 6, 5, 3)), rng.normal(size=(2, 6, 5, 3))
    valid = rng.uniform(size=(2, 6, 5)) > 0.2
    got = gradient_loss_multiscale(torch.tensor(pred), torch.tensor(gt), torch.tensor(valid), None, scales=2)
    np.testing.assert_allclose(got.item(), np_gradient_term(pred, gt, valid, None, 2, 1.0, 0.2), rtol=1e-5)


def test_point_loss_matches_numpy():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(1, 2, 6, 5, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.5
    conf = 1 + np.exp(rng.normal(size=gt.shape[:-1]))
    valid = rng.uniform(size=gt.shape[:-1]) > 0.3
    out = point_loss(torch.tensor(pred), torch.tensor(conf), torch.tensor(gt), torch.tensor(valid), gradient_scales=2)
    confl, reg = np_regression(pred, gt, valid, conf, 1.0, 0.2)
    grad = np_gradient_term(
        pred.reshape(-1, 6, 5, 3), gt.reshape(-1, 6, 5, 3), valid.reshape(-1, 6, 5), conf.reshape(-1, 6, 5), 2, 1.0, 0.2
    )
    np.testing.assert_allclose(out["loss_reg_point"].item(), reg, rtol=1e-5)
    np.testing.assert_allclose(out["loss_conf_point"].item(), confl, rtol=1e-5)
    np.testing.assert_allclose(out["loss_point"].item(), confl + reg + grad, rtol=1e-5)


# --------------------------------------------------------------------------- L_MD
@pytest.mark.parametrize("alpha", [0.0, 5.0])
def test_metric_depth_loss_matches_numpy(alpha):
    rng = np.random.default_rng(11)
    gt = rng.uniform(0.2, 8, size=(2, 3, 6, 7))
    gt[rng.uniform(size=gt.shape) < 0.3] = 0.0
    gt[1, 2] = 0.0  # an image with no valid pixel is left out of the mean
    pred = gt * np.exp(rng.normal(size=gt.shape) * 0.4) + (gt == 0) * 1.0
    got = metric_depth_loss(
        torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32), alpha=alpha, eps=1e-6
    )
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.item(), np_lmd(pred, gt, gt > 0, alpha, 1e-6), rtol=1e-5)


def test_metric_depth_loss_alpha_zero_is_mean_squared_log_error():
    rng = np.random.default_rng(5)
    gt = rng.uniform(0.5, 5, size=(1, 1, 8, 8))
    pred = rng.uniform(0.5, 5, size=gt.shape)
    e = np.log(pred + 1e-6) - np.log(gt + 1e-6)
    got = metric_depth_loss(torch.tensor(pred), torch.tensor(gt), alpha=0.0)
    np.testing.assert_allclose(got.item(), np.mean(e**2), rtol=1e-5)


def test_metric_depth_loss_is_fp32_under_autocast():
    pred = torch.rand(1, 2, 8, 8, requires_grad=True)
    gt = torch.rand(1, 2, 8, 8) + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = metric_depth_loss(pred.bfloat16() + 0.5, gt.bfloat16())
    assert got.dtype == torch.float32 and torch.isfinite(got)


# --------------------------------------------------------------------------- empty masks
def test_losses_on_empty_masks_are_finite_zeros_with_grad():
    pred = torch.rand(1, 2, 8, 8, requires_grad=True)
    conf = (1 + torch.rand(1, 2, 8, 8)).requires_grad_()
    gt = torch.zeros(1, 2, 8, 8)
    gt[0, 0, 0, 0] = float("nan")
    outs = [
        depth_loss(pred, conf, gt)["loss_depth"],
        metric_depth_loss(pred, gt),
        point_loss(
            pred[..., None].expand(-1, -1, -1, -1, 3),
            conf,
            torch.rand(1, 2, 8, 8, 3),
            torch.zeros(1, 2, 8, 8, dtype=torch.bool),
        )["loss_point"],
    ]
    poses = [torch.rand(1, 2, 9, requires_grad=True)]
    outs.append(camera_loss(poses, torch.rand(1, 2, 9), torch.zeros(1, 2, dtype=torch.bool))["loss_camera"])
    for loss in outs:
        assert loss.item() == 0.0 and torch.isfinite(loss) and loss.requires_grad
        loss.backward(retain_graph=True)
    assert torch.isfinite(pred.grad).all() and (pred.grad == 0).all()
    assert torch.isfinite(conf.grad).all() and torch.isfinite(poses[0].grad).all()


def test_invalid_pixels_never_leak_nan_into_gradients():
    pred = torch.rand(1, 1, 6, 6) + 0.1
    pred[0, 0, 0, :3] = torch.tensor([float("nan"), -5.0, 0.0])
    pred.requires_grad_()
    gt = torch.rand(1, 1, 6, 6) + 0.5
    gt[0, 0, 0, :3] = 0.0
    for loss in (metric_depth_loss(pred, gt), depth_loss(pred, torch.ones_like(gt) * 2, gt)["loss_depth"]):
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, pred)
        assert torch.isfinite(grad).all() and (grad[0, 0, 0, :3] == 0).all()


# --------------------------------------------------------------------------- GT normalisation
def _random_clip(rng, b=2, s=3, h=5, w=6):
    quat = rng.normal(size=(b, s, 4))
    rot = quat_to_mat(torch.tensor(quat)).numpy()
    trans = rng.normal(size=(b, s, 3))
    extr = np.concatenate([rot, trans[..., None]], axis=-1)
    intr = np.zeros((b, s, 3, 3))
    intr[..., 0, 0], intr[..., 1, 1], intr[..., 0, 2], intr[..., 1, 2], intr[..., 2, 2] = 7.0, 6.0, w / 2, h / 2, 1.0
    depth = rng.uniform(0.5, 3, size=(b, s, h, w))
    depth[rng.uniform(size=depth.shape) < 0.2] = 0.0
    return extr, intr, depth


def test_normalize_gt_scene_matches_numpy():
    rng = np.random.default_rng(2)
    extr, intr, depth = _random_clip(rng)
    out = normalize_gt_scene(torch.tensor(extr), torch.tensor(intr), torch.tensor(depth))
    b, s, h, w = depth.shape
    for bi in range(b):
        e0 = np.eye(4)
        e0[:3] = extr[bi, 0]
        inv0 = np.linalg.inv(e0)
        pts, rels = [], []
        for si in range(s):
            ej = np.eye(4)
            ej[:3] = extr[bi, si]
            rel = ej @ inv0
            rels.append(rel)
            k = intr[bi, si]
            for y in range(h):
                for x in range(w):
                    d = depth[bi, si, y, x]
                    if d <= 0:
                        continue
                    cam = np.array([(x - k[0, 2]) / k[0, 0] * d, (y - k[1, 2]) / k[1, 1] * d, d])
                    world = np.linalg.inv(rel) @ np.append(cam, 1.0)
                    pts.append(world[:3])
        scale = np.mean(np.linalg.norm(np.array(pts), axis=1))
        np.testing.assert_allclose(out["scale"][bi].item(), scale, rtol=1e-9)
        np.testing.assert_allclose(out["extrinsics"][bi, 0].numpy(), np.eye(4)[:3], atol=1e-12)
        for si in range(s):
            np.testing.assert_allclose(out["extrinsics"][bi, si, :, :3].numpy(), rels[si][:3, :3], atol=1e-12)
            np.testing.assert_allclose(out["extrinsics"][bi, si, :, 3].numpy(), rels[si][:3, 3] / scale, atol=1e-12)
        np.testing.assert_allclose(out["depth"][bi].numpy(), depth[bi] / scale, atol=1e-12)
        valid_pts = out["world_points"][bi][out["valid"][bi]].numpy()
        np.testing.assert_allclose(np.linalg.norm(valid_pts, axis=1).mean(), 1.0, rtol=1e-9)
    empty = normalize_gt_scene(torch.tensor(extr), torch.tensor(intr), torch.zeros(depth.shape, dtype=torch.float64))
    assert (empty["scale"] == 1).all() and torch.isfinite(empty["extrinsics"]).all()


def test_recon_loss_is_zero_for_perfect_prediction_and_finite_otherwise():
    rng = np.random.default_rng(4)
    extr, intr, depth = _random_clip(rng, h=8, w=8)
    intr[..., 0, 2] = intr[..., 1, 2] = 4.0
    gt = {
        "extrinsics": torch.tensor(extr, dtype=torch.float32),
        "intrinsics": torch.tensor(intr, dtype=torch.float32),
        "depth": torch.tensor(depth, dtype=torch.float32),
    }
    norm = normalize_gt_scene(gt["extrinsics"], gt["intrinsics"], gt["depth"])
    pose = extri_intri_to_pose_encoding(norm["extrinsics"], gt["intrinsics"], (8, 8))
    cfg = ReconLossConfig(point_weight=1.0, conf_alpha=0.0)
    pred = {"pose_enc_list": [pose] * 4, "depth": norm["depth"], "depth_conf": torch.full_like(norm["depth"], 2.0)}
    out = ReconLoss(cfg)(pred, gt)
    assert out["loss_camera"].item() < 1e-5 and out["loss_reg_depth"].item() < 1e-6
    assert out["loss_reg_point"].item() < 1e-4 and out["loss"].item() < 1e-3
    torch.testing.assert_close(
        points_from_prediction(norm["depth"], pose, (8, 8))[norm["valid"]],
        norm["world_points"][norm["valid"]],
        atol=1e-4,
        rtol=1e-4,
    )
    noisy = {
        k: (v.clone().requires_grad_() if k != "pose_enc_list" else [p + 0.1 * torch.randn_like(p) for p in v])
        for k, v in pred.items()
    }
    out = ReconLoss(ReconLossConfig())(noisy, gt)
    assert torch.isfinite(out["loss"]) and out["loss_camera"].item() > 0  # the total may be < 0 (−α·log c)
    out["loss"].backward()
    assert torch.isfinite(noisy["depth"].grad).all()


def test_loss_config_validation():
    with pytest.raises(ValueError, match="recon.loss.camera_decay"):
        ReconLossConfig(camera_decay=0.0)
    with pytest.raises(ValueError, match="recon.loss.point_weight"):
        ReconLossConfig(point_weight=-1.0)
    assert math.isclose(ReconLossConfig().conf_alpha, 0.2)
