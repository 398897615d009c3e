"""Camera and scene geometry with the conventions below (VGGT-compatible; README "Conventions").

Conventions
-----------
* Extrinsics are **world→camera** (camera-from-world) ``[..., 3, 4]`` with OpenCV axes
  (x right, y down, z forward).
* Intrinsics ``[..., 3, 3]`` are in pixels of the model input. A pixel with integer index
  ``(u, v)`` (column, row) has its centre at ``(u, v)``; predicted intrinsics put the
  principal point at ``(W / 2, H / 2)``.
* Pose encoding ``[..., 9]`` = ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` with the
  quaternion in **XYZW** order, ``w >= 0``, ``fov_h = 2·atan((H/2)/fy)``,
  ``fov_w = 2·atan((W/2)/fx)``.
* Boxes ``[..., 6]`` are axis-aligned ``[cx, cy, cz, dx, dy, dz]`` in metres.

Every function is batched over arbitrary leading dimensions and differentiable unless noted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "quat_to_mat",
    "mat_to_quat",
    "extri_intri_to_pose_encoding",
    "pose_encoding_to_extri_intri",
    "closed_form_inverse_se3",
    "to_homogeneous",
    "pixel_grid",
    "depth_to_cam_points",
    "cam_to_world_points",
    "depth_to_world_points",
    "project_points",
    "umeyama",
    "apply_sim3",
    "box_corners",
    "boxes_from_corners",
    "transform_boxes",
    "box_volume",
    "aabb_intersection",
    "aabb_iou",
    "aabb_iou_pairwise",
    "fov_to_focal",
]


# --------------------------------------------------------------------------- quaternions
def quat_to_mat(quat: Tensor) -> Tensor:
    """Unit quaternion(s) in XYZW order → rotation matrices.

    Args:
        quat: ``[..., 4]`` quaternions ``(x, y, z, w)``; normalised inside.
    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    q = quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z, w = q.unbind(-1)
    two = 2.0
    m = torch.stack(
        [
            1 - two * (y * y + z * z),
            two * (x * y - z * w),
            two * (x * z + y * w),
            two * (x * y + z * w),
            1 - two * (x * x + z * z),
            two * (y * z - x * w),
            two * (x * z - y * w),
            two * (y * z + x * w),
            1 - two * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def _sqrt_positive_part(x: Tensor) -> Tensor:
    """``sqrt(max(0, x))`` with a zero sub-gradient where ``x <= 0``."""
    out = torch.zeros_like(x)
    positive = x > 0
    out[positive] = torch.sqrt(x[positive])
    return out


def mat_to_quat(matrix: Tensor) -> Tensor:
    """Rotation matrices → unit quaternions in XYZW order with ``w >= 0``.

    Uses the numerically stable "best-conditioned candidate" construction (one candidate
    per largest diagonal term), so it is accurate for rotations near 180° too.

    Args:
        matrix: ``[..., 3, 3]`` rotation matrices.
    Returns:
        ``[..., 4]`` quaternions ``(x, y, z, w)`` with ``w >= 0``.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"mat_to_quat expects [..., 3, 3] matrices, got shape {tuple(matrix.shape)}")
    batch = matrix.shape[:-2]
    m = matrix.reshape(batch + (9,))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    # |w|, |x|, |y|, |z| times 2.
    q_abs = _sqrt_positive_part(
        torch.stack(
            [
                1.0 + m00 + m11 + m22,
                1.0 + m00 - m11 - m22,
                1.0 - m00 + m11 - m22,
                1.0 - m00 - m11 + m22,
            ],
            dim=-1,
        )
    )
    # Candidate quaternions in (w, x, y, z), each scaled by 2·q_abs[i].
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    floor = torch.tensor(0.1, dtype=q_abs.dtype, device=q_abs.device)
    cands = cands / (2.0 * torch.maximum(q_abs[..., None], floor))
    best = F.one_hot(q_abs.argmax(dim=-1), num_classes=4) > 0.5
    wxyz = cands[best].reshape(batch + (4,))
    xyzw = torch.cat([wxyz[..., 1:], wxyz[..., :1]], dim=-1)
    xyzw = torch.where(xyzw[..., 3:4] < 0, -xyzw, xyzw)
    return xyzw / xyzw.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# --------------------------------------------------------------------------- pose encoding
def extri_intri_to_pose_encoding(extrinsics: Tensor, intrinsics: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Extrinsics + intrinsics → the 9-D pose encoding.

    Args:
        extrinsics: ``[..., 3, 4]`` world→camera.
        intrinsics: ``[..., 3, 3]`` in pixels of an ``image_hw`` image.
        image_hw: ``(H, W)`` of the image the intrinsics refer to.
    Returns:
        ``[..., 9]`` = ``[t (3), quat XYZW (4), fov_h, fov_w]``.
    """
    height, width = image_hw
    rot = extrinsics[..., :3, :3]
    trans = extrinsics[..., :3, 3]
    quat = mat_to_quat(rot)
    fov_h = 2 * torch.atan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsics[..., 0, 0])
    return torch.cat([trans, quat, fov_h[..., None], fov_w[..., None]], dim=-1).to(extrinsics.dtype)


MIN_FOV = 1e-4
"""Smallest field of view (radians) turned into a focal length: FoV 0 would give an infinite focal length."""


def pose_encoding_to_extri_intri(pose_encoding: Tensor, image_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The 9-D pose encoding → extrinsics and intrinsics (principal point at the centre).

    Args:
        pose_encoding: ``[..., 9]``.
        image_hw: ``(H, W)`` of the model input.
    Returns:
        extrinsics ``[..., 3, 4]`` world→camera and intrinsics ``[..., 3, 3]``.
    """
    if pose_encoding.shape[-1] != 9:
        raise ValueError(f"pose encoding must have 9 values in its last dim, got {pose_encoding.shape[-1]}")
    height, width = image_hw
    trans = pose_encoding[..., :3]
    rot = quat_to_mat(pose_encoding[..., 3:7])
    # an untrained / ReLU camera head can predict FoV 0: clamp so the focal length stays finite
    fov_h = pose_encoding[..., 7].clamp(min=MIN_FOV)
    fov_w = pose_encoding[..., 8].clamp(min=MIN_FOV)
    extrinsics = torch.cat([rot, trans[..., None]], dim=-1)
    fy = (height / 2.0) / torch.tan(fov_h / 2.0)
    fx = (width / 2.0) / torch.tan(fov_w / 2.0)
    intrinsics = torch.zeros(pose_encoding.shape[:-1] + (3, 3), dtype=pose_encoding.dtype, device=pose_encoding.device)
    intrinsics[..., 0, 0] = fx
    intrinsics[..., 1, 1] = fy
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


# --------------------------------------------------------------------------- rigid transforms
def to_homogeneous(transform: Tensor) -> Tensor:
    """``[..., 3, 4]`` or ``[..., 4, 4]`` → ``[..., 4, 4]`` with bottom row ``[0, 0, 0, 1]``."""
    if transform.shape[-2:] == (4, 4):
        return transform
    if transform.shape[-2:] != (3, 4):
        raise ValueError(f"expected a [..., 3, 4] or [..., 4, 4] transform, got {tuple(transform.shape)}")
    bottom = torch.zeros(transform.shape[:-2] + (1, 4), dtype=transform.dtype, device=transform.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([transform, bottom], dim=-2)


def closed_form_inverse_se3(transform: Tensor) -> Tensor:
    """Inverse of rigid transforms in closed form: ``[R | t]⁻¹ = [Rᵀ | −Rᵀ t]``.

    Args:
        transform: ``[..., 3, 4]`` or ``[..., 4, 4]`` rigid transforms.
    Returns:
        The inverses with the same shape as the input.
    """
    if transform.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"expected a [..., 3, 4] or [..., 4, 4] transform, got {tuple(transform.shape)}")
    rot_t = transform[..., :3, :3].transpose(-1, -2)
    trans = transform[..., :3, 3:]
    inv = torch.cat([rot_t, -rot_t @ trans], dim=-1)
    return to_homogeneous(inv) if transform.shape[-2] == 4 else inv


# --------------------------------------------------------------------------- (un)projection
def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """Pixel coordinates ``[H, W, 2]`` holding ``(u, v)`` = (column, row) of each pixel."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


def depth_to_cam_points(depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Unproject depth maps into camera-frame points.

    Args:
        depth: ``[..., H, W]`` z-depth.
        intrinsics: ``[..., 3, 3]`` (same leading dims as ``depth``).
    Returns:
        ``[..., H, W, 3]`` points ``(x, y, z)`` in the camera frame; ``z == depth``.
    """
    height, width = depth.shape[-2:]
    uv = pixel_grid(height, width, device=depth.device, dtype=depth.dtype)
    fx = intrinsics[..., 0, 0, None, None]
    fy = intrinsics[..., 1, 1, None, None]
    cx = intrinsics[..., 0, 2, None, None]
    cy = intrinsics[..., 1, 2, None, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    return torch.stack([x, y, depth], dim=-1)


def cam_to_world_points(cam_points: Tensor, extrinsics: Tensor) -> Tensor:
    """Camera-frame points → world points, given world→camera extrinsics.

    Args:
        cam_points: ``[..., N1, N2, ..., 3]`` points; the trailing point dims may be any count
            (e.g. ``[..., H, W, 3]``).
        extrinsics: ``[..., 3, 4]`` world→camera with the leading dims of ``cam_points``.
    Returns:
        World points with the shape of ``cam_points``: ``X_w = Rᵀ (X_c − t)``.
    """
    lead = extrinsics.shape[:-2]
    rot = extrinsics[..., :3, :3]
    trans = extrinsics[..., :3, 3]
    flat = cam_points.reshape(lead + (-1, 3))
    world = (flat - trans[..., None, :]) @ rot
    return world.reshape(cam_points.shape)


def depth_to_world_points(depth: Tensor, extrinsics: Tensor, intrinsics: Tensor) -> Tensor:
    """Unproject depth into world points (paper Eq. 3 at every pixel).

    Args:
        depth: ``[..., H, W]``; extrinsics ``[..., 3, 4]`` world→camera; intrinsics ``[..., 3, 3]``.
    Returns:
        ``[..., H, W, 3]`` world points.
    """
    return cam_to_world_points(depth_to_cam_points(depth, intrinsics), extrinsics)


def project_points(points: Tensor, extrinsics: Tensor, intrinsics: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Project world points into pixels.

    Args:
        points: ``[..., N, 3]`` world points.
        extrinsics: ``[..., 3, 4]`` world→camera; intrinsics ``[..., 3, 3]``.
    Returns:
        ``uv [..., N, 2]`` pixel coordinates and ``z [..., N]`` camera depth. Points with
        ``z <= eps`` get non-finite-free but meaningless ``uv``; mask them with ``z``.
    """
    rot = extrinsics[..., :3, :3]
    trans = extrinsics[..., :3, 3]
    cam = points @ rot.transpose(-1, -2) + trans[..., None, :]
    z = cam[..., 2]
    pix = cam @ intrinsics.transpose(-1, -2)
    uv = pix[..., :2] / z.clamp_min(eps)[..., None]
    return uv, z


# --------------------------------------------------------------------------- alignment
def umeyama(
    src: Tensor, dst: Tensor, with_scale: bool = True, weights: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares similarity (Sim(3)) or rigid (SE(3)) transform with ``dst ≈ s·R·src + t``.

    Umeyama (1991), computed in float64.

    Args:
        src, dst: ``[N, 3]`` corresponding points (N ≥ 3, not all collinear).
        with_scale: estimate the scale ``s`` (Sim(3)); ``False`` fixes ``s = 1`` (SE(3)).
        weights: optional ``[N]`` non-negative weights.
    Returns:
        ``s`` (scalar tensor), ``R [3, 3]``, ``t [3]`` in the dtype of ``src``.
    """
    if src.shape != dst.shape or src.ndim != 2 or src.shape[-1] != 3:
        raise ValueError(
            f"umeyama expects two [N, 3] arrays of equal shape, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    if src.shape[0] < 3:
        raise ValueError(f"umeyama needs at least 3 points, got {src.shape[0]}")
    x = src.double()
    y = dst.double()
    w = torch.ones(x.shape[0], dtype=torch.float64, device=x.device) if weights is None else weights.double()
    w = w / w.sum().clamp_min(1e-300)
    mu_x = (w[:, None] * x).sum(0)
    mu_y = (w[:, None] * y).sum(0)
    xc = x - mu_x
    yc = y - mu_y
    var_x = (w * (xc * xc).sum(-1)).sum()
    cov = (w[:, None, None] * (yc[:, :, None] * xc[:, None, :])).sum(0)
    u, d, vt = torch.linalg.svd(cov)
    sign = torch.ones(3, dtype=torch.float64, device=x.device)
    if torch.det(u) * torch.det(vt) < 0:
        sign[2] = -1.0
    rot = u @ torch.diag(sign) @ vt
    scale = (
        (d * sign).sum() / var_x.clamp_min(1e-300)
        if with_scale
        else torch.ones((), dtype=torch.float64, device=x.device)
    )
    trans = mu_y - scale * rot @ mu_x
    return scale.to(src.dtype), rot.to(src.dtype), trans.to(src.dtype)


def apply_sim3(points: Tensor, scale: Tensor, rot: Tensor, trans: Tensor) -> Tensor:
    """``s·R·p + t`` for points ``[..., 3]``."""
    return scale * points @ rot.transpose(-1, -2) + trans


# --------------------------------------------------------------------------- boxes
_CORNER_SIGNS = torch.tensor([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])


def box_corners(boxes: Tensor) -> Tensor:
    """Axis-aligned boxes ``[..., 6]`` (centre, size) → corners ``[..., 8, 3]``."""
    signs = _CORNER_SIGNS.to(device=boxes.device, dtype=boxes.dtype)
    return boxes[..., None, :3] + 0.5 * boxes[..., None, 3:6] * signs


def boxes_from_corners(corners: Tensor) -> Tensor:
    """Points ``[..., M, 3]`` → their axis-aligned bounding box ``[..., 6]``."""
    lo = corners.amin(dim=-2)
    hi = corners.amax(dim=-2)
    return torch.cat([(lo + hi) / 2, hi - lo], dim=-1)


def transform_boxes(boxes: Tensor, transform: Tensor) -> Tensor:
    """Apply a rigid (or similarity) transform to axis-aligned boxes.

    The 8 corners are transformed and the result is their axis-aligned bounding box, so a
    rotation about a non-axis direction enlarges the box (exact for axis permutations and
    for rotations by multiples of 90°).

    Args:
        boxes: ``[..., 6]``; transform: ``[4, 4]`` or ``[3, 4]`` (applied as ``R·p + t``).
    Returns:
        ``[..., 6]`` boxes in the target frame.
    """
    rot = transform[:3, :3]
    trans = transform[:3, 3]
    corners = box_corners(boxes) @ rot.transpose(-1, -2) + trans
    return boxes_from_corners(corners)


def box_volume(boxes: Tensor) -> Tensor:
    """Volumes ``[...]`` of boxes ``[..., 6]`` (negative sizes count as zero)."""
    return boxes[..., 3:6].clamp_min(0).prod(dim=-1)


def aabb_intersection(a: Tensor, b: Tensor) -> Tensor:
    """Intersection volume of broadcastable box tensors ``[..., 6]``."""
    lo = torch.maximum(a[..., :3] - a[..., 3:6] / 2, b[..., :3] - b[..., 3:6] / 2)
    hi = torch.minimum(a[..., :3] + a[..., 3:6] / 2, b[..., :3] + b[..., 3:6] / 2)
    return (hi - lo).clamp_min(0).prod(dim=-1)


def aabb_iou(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Element-wise IoU of axis-aligned boxes ``[..., 6]``: ``inter / (v1 + v2 − inter)``."""
    inter = aabb_intersection(a, b)
    union = box_volume(a) + box_volume(b) - inter
    return inter / union.clamp_min(eps)


def aabb_iou_pairwise(a: Tensor, b: Tensor) -> Tensor:
    """IoU matrix ``[N, M]`` between boxes ``a [N, 6]`` and ``b [M, 6]``."""
    return aabb_iou(a[:, None, :], b[None, :, :])


def fov_to_focal(fov: Tensor | float, size: int) -> Tensor | float:
    """Focal length in pixels of a field of view ``fov`` (radians) over ``size`` pixels."""
    if isinstance(fov, Tensor):
        return (size / 2.0) / torch.tan(fov / 2.0)
    return (size / 2.0) / math.tan(fov / 2.0)
