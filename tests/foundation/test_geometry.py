"""Geometry conventions (README "Conventions": OpenCV world→camera extrinsics, XYZW quaternions with
w ≥ 0, 9-D pose encoding, closed-form SE(3) inverse, (un)projection as in Vid-LLM Eq. 3, Umeyama
alignment, box corners and AABB IoU), each checked against an independent computation."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from recon import geometry as G


def _random_rotations(n: int, seed: int = 0) -> np.ndarray:
    return Rotation.random(n, random_state=seed).as_matrix()


def test_quat_to_mat_matches_scipy_xyzw():
    quats = Rotation.random(64, random_state=1).as_quat()  # scipy: scalar-last (x, y, z, w)
    ours = G.quat_to_mat(torch.from_numpy(quats)).numpy()
    ref = Rotation.from_quat(quats).as_matrix()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_quat_order_is_xyzw_not_wxyz():
    # 90° about +z: (x, y, z, w) = (0, 0, sin 45°, cos 45°) maps x → y.
    s = math.sqrt(0.5)
    rot = G.quat_to_mat(torch.tensor([0.0, 0.0, s, s], dtype=torch.float64))
    np.testing.assert_allclose(rot.numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    quat = G.mat_to_quat(rot)
    np.testing.assert_allclose(quat.numpy(), [0, 0, s, s], atol=1e-12)


def test_mat_to_quat_round_trip_and_w_nonnegative():
    rots = torch.from_numpy(_random_rotations(500, seed=2))
    # include the hard cases: identity and 180° rotations about each axis
    extra = torch.from_numpy(Rotation.from_rotvec(np.pi * np.eye(3)).as_matrix())
    rots = torch.cat([rots, extra, torch.eye(3, dtype=torch.float64)[None]])
    quats = G.mat_to_quat(rots)
    assert (quats[..., 3] >= 0).all()
    np.testing.assert_allclose(quats.norm(dim=-1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(G.quat_to_mat(quats).numpy(), rots.numpy(), atol=1e-10)
    # agrees with scipy up to the sign convention (w >= 0)
    ref = Rotation.from_matrix(rots.numpy()).as_quat()
    ref = np.where(ref[:, 3:4] < 0, -ref, ref)
    close = np.isclose(quats.numpy(), ref, atol=1e-8).all(-1) | np.isclose(quats.numpy(), -ref, atol=1e-8).all(-1)
    assert close.all()


def test_pose_encoding_round_trip_and_fov_formula():
    torch.manual_seed(0)
    height, width = 28 * 3, 28 * 4
    rots = torch.from_numpy(_random_rotations(6, seed=3)).float()
    trans = torch.randn(6, 3)
    extr = torch.cat([rots, trans[..., None]], dim=-1).reshape(2, 3, 3, 4)
    fx, fy = 90.0, 80.0
    intr = torch.tensor([[fx, 0, width / 2], [0, fy, height / 2], [0, 0, 1.0]]).expand(2, 3, 3, 3)
    enc = G.extri_intri_to_pose_encoding(extr, intr, (height, width))
    assert enc.shape == (2, 3, 9)
    np.testing.assert_allclose(enc[..., 7].numpy(), 2 * math.atan((height / 2) / fy), rtol=1e-6)
    np.testing.assert_allclose(enc[..., 8].numpy(), 2 * math.atan((width / 2) / fx), rtol=1e-6)
    np.testing.assert_allclose(enc[..., :3].numpy(), trans.reshape(2, 3, 3).numpy())
    extr2, intr2 = G.pose_encoding_to_extri_intri(enc, (height, width))
    np.testing.assert_allclose(extr2.numpy(), extr.numpy(), atol=1e-5)
    np.testing.assert_allclose(intr2.numpy(), intr.numpy(), rtol=1e-5)


def test_closed_form_inverse_matches_linalg():
    rots = torch.from_numpy(_random_rotations(10, seed=4))
    t = torch.randn(10, 3, 1, dtype=torch.float64)
    T = G.to_homogeneous(torch.cat([rots, t], dim=-1))
    np.testing.assert_allclose(G.closed_form_inverse_se3(T).numpy(), torch.linalg.inv(T).numpy(), atol=1e-12)
    inv34 = G.closed_form_inverse_se3(T[:, :3])
    assert inv34.shape == (10, 3, 4)
    np.testing.assert_allclose(inv34.numpy(), torch.linalg.inv(T)[:, :3].numpy(), atol=1e-12)


def test_unprojection_hand_built_pinhole():
    depth = torch.zeros(4, 6)
    depth[1, 5] = 2.0
    K = torch.tensor([[10.0, 0, 3.0], [0, 20.0, 2.0], [0, 0, 1]])
    pts = G.depth_to_cam_points(depth, K)
    assert pts.shape == (4, 6, 3)
    # pixel (u=5, v=1): x = (5-3)/10*2 = 0.4, y = (1-2)/20*2 = -0.1, z = 2
    np.testing.assert_allclose(pts[1, 5].numpy(), [0.4, -0.1, 2.0], atol=1e-7)


def test_world_points_use_world_to_camera_extrinsics():
    # A camera centred at C = (1, 2, 3) with identity rotation has extrinsic t = -C.
    C = torch.tensor([1.0, 2.0, 3.0])
    extr = torch.cat([torch.eye(3), -C[:, None]], dim=-1)
    K = torch.tensor([[50.0, 0, 2.0], [0, 50.0, 2.0], [0, 0, 1]])
    depth = torch.full((5, 5), 4.0)
    world = G.depth_to_world_points(depth, extr, K)
    # the principal pixel (2, 2) looks straight down +z from C
    np.testing.assert_allclose(world[2, 2].numpy(), [1.0, 2.0, 7.0], atol=1e-6)


def test_projection_inverts_unprojection_batched():
    torch.manual_seed(1)
    B, S, H, W = 2, 3, 7, 9
    rots = torch.from_numpy(_random_rotations(B * S, seed=5)).float().reshape(B, S, 3, 3)
    extr = torch.cat([rots, torch.randn(B, S, 3, 1)], dim=-1)
    K = torch.tensor([[30.0, 0, W / 2], [0, 28.0, H / 2], [0, 0, 1]]).expand(B, S, 3, 3)
    depth = torch.rand(B, S, H, W) * 3 + 0.5
    world = G.depth_to_world_points(depth, extr, K)
    uv, z = G.project_points(world.reshape(B, S, H * W, 3), extr, K)
    grid = G.pixel_grid(H, W).reshape(1, 1, H * W, 2)
    np.testing.assert_allclose(uv.numpy(), grid.expand_as(uv).numpy(), atol=1e-3)
    np.testing.assert_allclose(z.numpy(), depth.reshape(B, S, -1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_recovers_known_transform(with_scale):
    rng = np.random.default_rng(6)
    src = rng.normal(size=(50, 3))
    R = Rotation.random(random_state=7).as_matrix()
    s = 2.5 if with_scale else 1.0
    t = np.array([0.3, -1.0, 4.0])
    dst = s * src @ R.T + t
    s_hat, R_hat, t_hat = G.umeyama(torch.from_numpy(src), torch.from_numpy(dst), with_scale=with_scale)
    np.testing.assert_allclose(float(s_hat), s, rtol=1e-10)
    np.testing.assert_allclose(R_hat.numpy(), R, atol=1e-10)
    np.testing.assert_allclose(t_hat.numpy(), t, atol=1e-10)
    np.testing.assert_allclose(G.apply_sim3(torch.from_numpy(src), s_hat, R_hat, t_hat).numpy(), dst, atol=1e-10)


def test_umeyama_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        G.umeyama(torch.zeros(2, 3), torch.zeros(2, 3))


def test_aabb_iou_hand_computed():
    a = torch.tensor([0.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    b = torch.tensor([1.0, 0.0, 0.0, 2.0, 2.0, 2.0])  # overlap 1 x 2 x 2 = 4; union 8 + 8 - 4 = 12
    assert float(G.aabb_iou(a, b)) == pytest.approx(1 / 3)
    c = torch.tensor([5.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert float(G.aabb_iou(a, c)) == 0.0
    assert float(G.aabb_iou(a, a)) == pytest.approx(1.0)
    inner = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # volume 1 inside volume 8
    assert float(G.aabb_iou(a, inner)) == pytest.approx(1 / 8)
    mat = G.aabb_iou_pairwise(torch.stack([a, c]), torch.stack([b, inner, c]))
    np.testing.assert_allclose(mat.numpy(), [[1 / 3, 1 / 8, 0.0], [0.0, 0.0, 1.0]], atol=1e-7)


def test_box_corners_and_rigid_transform():
    box = torch.tensor([1.0, 2.0, 3.0, 2.0, 4.0, 6.0])
    corners = G.box_corners(box)
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners.min(0).values.numpy(), [0, 0, 0])
    np.testing.assert_allclose(corners.max(0).values.numpy(), [2, 4, 6])
    np.testing.assert_allclose(G.boxes_from_corners(corners).numpy(), box.numpy())
    # 90° about z then a shift: centre (1,2,3) -> (-2,1,3) + (10,0,0); sizes dx, dy swap
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    T[0, 3] = 10.0
    np.testing.assert_allclose(G.transform_boxes(box, T).numpy(), [8.0, 1.0, 3.0, 4.0, 2.0, 6.0], atol=1e-6)
    # and back with the closed-form inverse
    back = G.transform_boxes(G.transform_boxes(box, T), G.closed_form_inverse_se3(T))
    np.testing.assert_allclose(back.numpy(), box.numpy(), atol=1e-6)
