"""Point-cloud helpers of the API and the export tool: confidence filtering, voxel down-sampling,
PLY writing (open3d, atomic), camera frusta and a headless preview image.

Arrays are NumPy: points ``[N, 3]`` float (metres), colours ``[N, 3]`` float in [0, 1],
confidence ``[N]``. open3d and matplotlib are imported lazily (only where used).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidllm.io import atomic_write

__all__ = [
    "confidence_keep_mask",
    "voxel_downsample_colored",
    "to_open3d",
    "write_point_cloud",
    "read_point_cloud",
    "frustum_lines",
    "write_frusta",
    "box_edges",
    "render_preview",
]

# the 12 edges of a box given by its 8 corners in recon.geometry.box_corners order (x fastest? see _corners)
_BOX_EDGES = np.array([[0, 1], [1, 3], [3, 2], [2, 0], [4, 5], [5, 7], [7, 6], [6, 4], [0, 4], [1, 5], [2, 6], [3, 7]])


def confidence_keep_mask(confidence: np.ndarray, quantile: float | None) -> np.ndarray:
    """Keep points whose confidence is ≥ the ``quantile`` of all confidences (``None``/0 keeps all).

    ``quantile=0.5`` drops the less confident half (VGGT's demo uses a percentile the same way).
    Non-finite confidences are always dropped.
    """
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    finite = np.isfinite(confidence)
    if not quantile:
        return finite
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"confidence quantile must be in [0, 1), got {quantile}")
    if not finite.any():
        return finite
    threshold = np.quantile(confidence[finite], quantile)
    return finite & (confidence >= threshold)


def voxel_downsample_colored(points: np.ndarray, colors: np.ndarray, voxel_size: float, confidence: np.ndarray | None = None):
    """Mean of the points, colours (and confidences) in each voxel of edge ``voxel_size`` metres.

    Voxels are ordered by their integer key (deterministic). Returns ``(points [M, 3], colors [M, 3],
    confidence [M] or None)``.
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel size must be > 0 metres, got {voxel_size}")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        return points, np.asarray(colors, dtype=np.float64).reshape(-1, 3), None if confidence is None else np.zeros(0)
    keys = np.floor(points / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)

    def mean(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros((len(counts),) + values.shape[1:], dtype=np.float64)
        np.add.at(out, inverse, values)
        return out / counts.reshape((-1,) + (1,) * (values.ndim - 1))

    return mean(points), mean(colors), None if confidence is None else mean(np.asarray(confidence).reshape(-1))


def to_open3d(points: np.ndarray, colors: np.ndarray | None = None):
    """``open3d.geometry.PointCloud`` of ``points [N, 3]`` with optional colours ``[N, 3]`` in [0, 1]."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    if colors is not None:
        cloud.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, dtype=np.float64).reshape(-1, 3), 0.0, 1.0))
    return cloud


def write_point_cloud(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray | None = None, binary: bool = True) -> Path:
    """Write a coloured PLY atomically (temporary file + rename) with open3d; returns the path."""
    import open3d as o3d

    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise ValueError(f"{path}: point clouds are written as PLY; use a '.ply' file name")
    cloud = to_open3d(points, colors)
    with atomic_write(path, mode=None) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), cloud, write_ascii=not binary):
            raise OSError(f"{path}: open3d could not write the point cloud")
    return path


def read_point_cloud(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY point cloud → ``(points [N, 3], colors [N, 3] in [0, 1])`` (colours empty if absent)."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: point cloud not found")
    cloud = o3d.io.read_point_cloud(str(path))
    return np.asarray(cloud.points), np.asarray(cloud.colors)


def frustum_lines(extrinsics: np.ndarray, intrinsics: np.ndarray, image_hw: tuple[int, int], size: float = 0.1):
    """Camera frusta as line segments in the world (model) frame.

    Each camera gives 5 vertices — the centre and the 4 image corners unprojected at depth
    ``size`` metres — and 8 edges (centre → corners, the image rectangle).

    Args:
        extrinsics: ``[S, 3, 4]`` world→camera; intrinsics: ``[S, 3, 3]``; image_hw: (H, W) pixels.
    Returns:
        ``vertices [S·5, 3]``, ``lines [S·8, 2]`` (int indices into vertices).
    """
    ext = np.asarray(extrinsics, dtype=np.float64).reshape(-1, 3, 4)
    k = np.asarray(intrinsics, dtype=np.float64).reshape(-1, 3, 3)
    h, w = image_hw
    corners_px = np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])  # pixel centres of the image corners
    x = (corners_px[None, :, 0] - k[:, None, 0, 2]) / k[:, None, 0, 0] * size
    y = (corners_px[None, :, 1] - k[:, None, 1, 2]) / k[:, None, 1, 1] * size
    cam = np.concatenate([np.zeros((len(ext), 1, 3)), np.stack([x, y, np.full_like(x, size)], -1)], axis=1)  # [S, 5, 3]
    rot, trans = ext[:, :, :3], ext[:, :, 3]
    world = np.einsum("sji,skj->ski", rot, cam - trans[:, None, :])  # R^T (p - t)
    base = (np.arange(len(ext)) * 5)[:, None, None]
    edges = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]])
    return world.reshape(-1, 3), (edges[None] + base).reshape(-1, 2)


def write_frusta(path: str | os.PathLike, extrinsics: np.ndarray, intrinsics: np.ndarray, image_hw: tuple[int, int], size: float = 0.1) -> Path:
    """Write the camera frusta as an open3d ``LineSet`` PLY (atomic); first camera red, others blue."""
    import open3d as o3d

    vertices, lines = frustum_lines(extrinsics, intrinsics, image_hw, size)
    line_set = o3d.geometry.LineSet(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector2iVector(lines.astype(np.int32)))
    colors = np.tile([[0.1, 0.3, 0.9]], (len(lines), 1))
    colors[:8] = [0.9, 0.1, 0.1]
    line_set.colors = o3d.utility.Vector3dVector(colors)
    path = Path(path)
    with atomic_write(path, mode=None) as tmp:
        if not o3d.io.write_line_set(str(tmp), line_set, write_ascii=False):
            raise OSError(f"{path}: open3d could not write the camera line set")
    return path


def box_edges(boxes: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes ``[K, 6]`` (``[cx,cy,cz,dx,dy,dz]``) → edge segments ``[K, 12, 2, 3]``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    signs = np.array([[sx, sy, sz] for sz in (-0.5, 0.5) for sy in (-0.5, 0.5) for sx in (-0.5, 0.5)])  # corner c = (x, y, z bits)
    corners = boxes[:, None, :3] + signs[None] * boxes[:, None, 3:]  # [K, 8, 3]
    return corners[:, _BOX_EDGES]


def render_preview(
    path: str | os.PathLike,
    points: np.ndarray,
    colors: np.ndarray,
    boxes: np.ndarray | None = None,
    cameras: np.ndarray | None = None,
    max_points: int = 60000,
    title: str = "",
) -> Path:
    """Headless PNG preview (matplotlib, Agg): a top view (x–z plane of the OpenCV model frame, y down)
    and an oblique 3D view of the cloud, with boxes ``[K, 6]`` and camera centres ``[S, 3]`` if given.

    At most ``max_points`` points are drawn (deterministic even sub-sampling).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    colors = np.clip(np.asarray(colors, dtype=np.float64).reshape(-1, 3), 0, 1)
    if len(points) > max_points:
        idx = np.linspace(0, len(points) - 1, max_points).round().astype(np.int64)
        points, colors = points[idx], colors[idx]
    fig = plt.figure(figsize=(11, 5), dpi=100)
    top = fig.add_subplot(1, 2, 1)
    top.scatter(points[:, 0], points[:, 2], c=colors, s=0.5, marker=".", linewidths=0)
    top.set_xlabel("x (m)")
    top.set_ylabel("z (m)")
    top.set_aspect("equal", adjustable="datalim")
    top.set_title("top view")
    oblique = fig.add_subplot(1, 2, 2, projection="3d")
    # plot with y flipped so that "up" (−y in OpenCV axes) points up in the figure
    oblique.scatter(points[:, 0], points[:, 2], -points[:, 1], c=colors, s=0.5, marker=".", linewidths=0, depthshade=False)
    oblique.view_init(elev=35, azim=-60)
    oblique.set_xlabel("x")
    oblique.set_ylabel("z")
    oblique.set_zlabel("-y")
    oblique.set_title("oblique view")
    if boxes is not None and len(np.asarray(boxes).reshape(-1, 6)):
        for segments in box_edges(boxes):
            for a, b in segments:
                top.plot([a[0], b[0]], [a[2], b[2]], color="lime", linewidth=1.0)
                oblique.plot([a[0], b[0]], [a[2], b[2]], [-a[1], -b[1]], color="lime", linewidth=1.0)
    if cameras is not None and len(cameras):
        cameras = np.asarray(cameras, dtype=np.float64).reshape(-1, 3)
        top.plot(cameras[:, 0], cameras[:, 2], "r.-", markersize=3, linewidth=0.8)
        oblique.plot(cameras[:, 0], cameras[:, 2], -cameras[:, 1], "r.-", markersize=3, linewidth=0.8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_write(path, mode=None) as tmp:
            fig.savefig(str(tmp), format="png")
    finally:
        plt.close(fig)
    return path
