"""Depth, point-cloud and pose metrics on hand-made cases (values computed by hand below)."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vidllm.metrics.recon_metrics import (
    abs_rel,
    delta_accuracy,
    depth_metrics,
    log10_error,
    pointcloud_metrics,
    pose_auc,
    pose_metrics,
    relative_pose_errors,
    rmse,
    rotation_angle_deg,
    translation_angle_deg,
    voxel_downsample,
)

# ------------------------------------------------------------------------------------------ depth


def test_depth_metrics_tiny_image():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 1.0], [3.0, 0.0]])  # the 0 is invalid
    m = depth_metrics(pred, gt)
    # valid pairs (d, g): (1, 1), (2, 1), (3, 3); ratios 1, 2, 1
    assert m["delta1"] == pytest.approx(2 / 3)
    assert m["abs_rel"] == pytest.approx(1 / 3)  # |2 − 1| / 1 over 3 pixels
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert m["log10"] == pytest.approx(math.log10(2) / 3)
    assert m["num_pixels"] == 3 and m["num_images"] == 1


def test_depth_equations_with_mask_and_axis():
    pred = np.array([[1.0, 1.3], [2.0, 8.0]])
    gt = np.array([[1.0, 1.0], [1.0, 4.0]])
    valid = np.array([[True, True], [True, False]])
    # row 0: (1, 1) and (1.3, 1); row 1: only (2, 1)
    np.testing.assert_allclose(delta_accuracy(pred, gt, valid, axis=1), [0.5, 0.0])
    np.testing.assert_allclose(abs_rel(pred, gt, valid, axis=1), [0.15, 1.0])
    np.testing.assert_allclose(rmse(pred, gt, valid, axis=1), [math.sqrt(0.09 / 2), 1.0])
    np.testing.assert_allclose(log10_error(pred, gt, valid, axis=1), [math.log10(1.3) / 2, math.log10(2.0)])
    assert delta_accuracy(pred, gt, valid) == pytest.approx(1 / 3)  # all valid pixels


def test_depth_metrics_per_image_vs_pooled_and_max_depth():
    pred = torch.tensor([[[1.0, 2.0]], [[4.0, 4.0]]])  # [S=2, H=1, W=2]
    gt = torch.tensor([[[1.0, 1.0]], [[4.0, 0.0]]])
    # image 0: AbsRel (0 + 1) / 2 = 0.5; image 1: one pixel, AbsRel 0
    assert depth_metrics(pred, gt)["abs_rel"] == pytest.approx(0.25)  # mean of per-image values
    assert depth_metrics(pred, gt, per_image=False)["abs_rel"] == pytest.approx(1 / 3)  # pooled over 3 pixels
    # with max_depth = 3 the 4 m pixel is dropped: one image left
    m = depth_metrics(pred, gt, max_depth=3.0)
    assert m["num_images"] == 1 and m["abs_rel"] == pytest.approx(0.5)
    # an explicit mask removes the 2 m prediction's pixel
    mask = torch.tensor([[[True, False]], [[True, True]]])
    assert depth_metrics(pred, gt, valid_mask=mask)["abs_rel"] == 0.0


def test_depth_alignment_and_errors():
    gt = np.array([[[1.0, 2.0, 4.0]]])
    pred = 2.0 * gt
    assert depth_metrics(pred, gt)["delta1"] == 0.0  # metric evaluation: off by ×2 everywhere
    for mode in ("median", "scale"):
        m = depth_metrics(pred, gt, alignment=mode)
        assert m["delta1"] == 1.0 and m["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    # an image without valid pixels is skipped and does not break the per-image alignment
    two = depth_metrics(np.concatenate([pred, pred]), np.concatenate([gt, np.zeros_like(gt)]), alignment="median")
    assert two["num_images"] == 1 and two["delta1"] == 1.0
    empty = depth_metrics(pred, np.zeros_like(gt))
    assert empty["delta1"] is None and empty["num_pixels"] == 0
    with pytest.raises(ValueError, match="alignment"):
        depth_metrics(pred, gt, alignment="affine")
    with pytest.raises(ValueError, match="same shape"):
        depth_metrics(pred[..., :2], gt)


# ------------------------------------------------------------------------------------ point clouds


def test_voxel_downsample_means_and_order():
    pts = np.array([[0.031, 0.0, 0.0], [0.001, 0.001, 0.001], [0.011, 0.015, 0.019], [0.035, 0.0, 0.0]])
    out = voxel_downsample(pts, 0.02)
    # voxel (0,0,0) holds points 1 and 2; voxel (1,0,0) holds points 0 and 3; sorted by voxel index
    np.testing.assert_allclose(out, [[0.006, 0.008, 0.010], [0.033, 0.0, 0.0]])
    np.testing.assert_allclose(voxel_downsample(pts[::-1], 0.02), out)
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_downsample(pts, 0.0)


def test_pointcloud_fscore_known_distances():
    gt = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    offsets = np.array([[0.03, 0, 0], [0.04, 0, 0], [0, 0.1, 0], [0, 0, 0.2]])
    pred = np.concatenate([gt + offsets, [[10.0, 0, 0]]])  # plus an outlier 9 m from (1, 0, 0)
    m = pointcloud_metrics(pred, gt, threshold=0.05, voxel_size=None)
    assert m["acc"] == pytest.approx((0.03 + 0.04 + 0.1 + 0.2 + 9.0) / 5)
    assert m["comp"] == pytest.approx((0.03 + 0.04 + 0.1 + 0.2) / 4)
    assert m["precision"] == pytest.approx(2 / 5) and m["recall"] == pytest.approx(2 / 4)
    assert m["fscore"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert m["chamfer"] == pytest.approx(0.5 * (m["acc"] + m["comp"]))
    # 2 cm voxels keep these isolated points (each lies alone in its voxel, so its mean is itself)
    assert pointcloud_metrics(pred, gt)["fscore"] == pytest.approx(m["fscore"])
    far = pointcloud_metrics(gt + 1.0, gt, voxel_size=None)
    assert far["fscore"] == 0.0 and far["precision"] == 0.0
    with pytest.raises(ValueError, match="empty point cloud"):
        pointcloud_metrics(np.zeros((0, 3)), gt)


# ------------------------------------------------------------------------------------------ poses


def _extrinsics_from_centres(rotations: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """World→camera [S, 3, 4] from camera→world rotations R_c2w [S, 3, 3] and centres [S, 3]."""
    r_w2c = np.swapaxes(rotations, -1, -2)
    t = -np.einsum("sij,sj->si", r_w2c, centres)
    return np.concatenate([r_w2c, t[..., None]], axis=-1)


def test_identical_poses_are_perfect():
    rng = np.random.default_rng(0)
    rots = Rotation.random(5, random_state=1).as_matrix()
    ext = _extrinsics_from_centres(rots, rng.normal(size=(5, 3)))
    m = pose_metrics(ext, ext)
    assert m == {"rra@15": 1.0, "rta@15": 1.0, "auc@30": 1.0, "num_pairs": 10}
    # a scaled trajectory (unknown scale) in another world frame is just as good
    shift = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    ext2 = ext.copy()
    ext2[:, :, :3] = ext[:, :, :3] @ shift.T  # world rotated by `shift`
    ext2[:, :, 3] *= 3.0
    assert pose_metrics(ext2, ext)["auc@30"] == 1.0


def test_known_rotation_error_on_one_frame():
    # three cameras looking down +z, centred on the z axis
    centres = np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 2.5]])
    gt = _extrinsics_from_centres(np.repeat(np.eye(3)[None], 3, 0), centres)
    pred = gt.copy()
    rz = Rotation.from_euler("z", 20.5, degrees=True).as_matrix()
    pred[2] = rz @ gt[2]  # frame 2 rotated by 20.5° about its optical axis (its t lies on that axis)
    rot, trans = relative_pose_errors(pred, gt)
    np.testing.assert_allclose(rot, [0.0, 20.5, 20.5], atol=1e-9)  # pairs (0,1), (0,2), (1,2)
    np.testing.assert_allclose(trans, [0.0, 0.0, 0.0], atol=1e-6)
    m = pose_metrics(pred, gt)
    assert m["rra@15"] == pytest.approx(1 / 3) and m["rta@15"] == 1.0
    # max errors 0, 20.5, 20.5 → 1/3 of pairs below t for t = 1..20, all pairs for t = 21..30
    assert m["auc@30"] == pytest.approx((20 * (1 / 3) + 10 * 1.0) / 30)


def test_known_translation_direction_error():
    eye = np.repeat(np.eye(3)[None], 2, 0)
    gt = _extrinsics_from_centres(eye, np.array([[0.0, 0, 0], [0, 0, 1]]))
    pred = _extrinsics_from_centres(eye, np.array([[0.0, 0, 0], [1, 0, 1]]))
    rot, trans = relative_pose_errors(pred, gt)
    assert rot[0] == pytest.approx(0.0, abs=1e-9) and trans[0] == pytest.approx(45.0)
    assert pose_metrics(pred, gt) == {"rra@15": 1.0, "rta@15": 0.0, "auc@30": 0.0, "num_pairs": 1}
    # a flipped baseline is 180° off, 0° under the sign ambiguity of VGGT / PoseDiffusion
    flipped = _extrinsics_from_centres(eye, np.array([[0.0, 0, 0], [0, 0, -1]]))
    assert relative_pose_errors(flipped, gt)[1][0] == pytest.approx(0.0, abs=1e-6)
    assert relative_pose_errors(flipped, gt, sign_ambiguity=False)[1][0] == pytest.approx(180.0)


def test_pose_errors_match_an_independent_computation():
    rng = np.random.default_rng(3)
    s = 4
    gt = _extrinsics_from_centres(Rotation.random(s, random_state=4).as_matrix(), rng.normal(size=(s, 3)))
    pred = _extrinsics_from_centres(Rotation.random(s, random_state=5).as_matrix(), rng.normal(size=(s, 3)))
    rot, trans = relative_pose_errors(torch.from_numpy(pred), torch.from_numpy(gt))
    k = 0
    for i in range(s):
        for j in range(i + 1, s):
            rel = []
            for e in (gt, pred):  # camera i → camera j: x_j = R_j R_iᵀ (x_i − t_i) + t_j
                r_ij = e[j, :, :3] @ e[i, :, :3].T
                rel.append((r_ij, e[j, :, 3] - r_ij @ e[i, :, 3]))
            expected_rot = Rotation.from_matrix(rel[0][0].T @ rel[1][0]).magnitude() * 180 / np.pi
            cos = abs(rel[0][1] @ rel[1][1]) / (np.linalg.norm(rel[0][1]) * np.linalg.norm(rel[1][1]))
            assert rot[k] == pytest.approx(expected_rot, abs=1e-6)
            assert trans[k] == pytest.approx(np.degrees(np.arccos(min(cos, 1.0))), abs=1e-6)
            k += 1


def test_pose_auc_hand_case_and_batches():
    # max errors 0.5° (bin 0) and 2.5° (bin 2): cumulative fractions 0.5, 0.5, then 1 for 28 bins
    assert pose_auc([0.5, 2.5], [0.0, 0.0]) == pytest.approx((0.5 + 0.5 + 28) / 30)
    assert pose_auc([0.0, 40.0], [0.0, 0.0]) == pytest.approx(0.5)
    assert rotation_angle_deg(np.eye(3), Rotation.from_euler("x", 179.0, degrees=True).as_matrix()) == pytest.approx(
        179.0
    )
    assert translation_angle_deg(np.zeros(3), np.zeros(3)) == 0.0
    assert translation_angle_deg(np.zeros(3), np.ones(3)) == 90.0
    centres = np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 2.5]])
    gt = _extrinsics_from_centres(np.repeat(np.eye(3)[None], 3, 0), centres)
    batch = np.stack([gt, gt])
    assert pose_metrics(batch, batch)["num_pairs"] == 6
    with pytest.raises(ValueError, match="differ in shape"):
        pose_metrics(gt, gt[:2])
