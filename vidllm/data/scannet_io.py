"""Low-level readers of the files of a ScanNet scene as SensReader and the ScanNet release ship them.

* ``<scene>.txt`` meta: ``key = value`` lines; ``axisAlignment`` = 16 floats, row-major 4×4
  (unaligned scan frame → aligned world); scenes without it (the test split) get the identity.
* ``pose/<i>.txt``: 4×4 camera→world in the unaligned frame; may hold ``-inf`` / NaN.
* ``intrinsic/intrinsic_{color,depth}.txt``: 4×4, K in the top-left 3×3.
* ``color/<i>.jpg`` (uint8 RGB) and ``depth/<i>.png`` (uint16 millimetres, 0 = invalid).
* ``<scene>_vh_clean_2.0.010000.segs.json`` (``segIndices`` per mesh vertex) and
  ``<scene>.aggregation.json`` (``segGroups[{objectId, label, segments}]``).

Every reader raises :class:`~vidllm.errors.DataError` naming the file (and field) on bad input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vidllm.errors import DataError

__all__ = [
    "read_meta",
    "read_matrix",
    "read_pose",
    "read_poses",
    "read_color",
    "read_depth",
    "read_segs",
    "read_aggregation",
    "read_mesh_vertices",
    "read_json",
    "read_split",
    "DEPTH_SHIFT",
]

DEPTH_SHIFT = 1000.0
"""Depth PNG units per metre (ScanNet: millimetres)."""


def read_json(path: str | os.PathLike):
    """Parse a JSON file; missing or invalid files raise DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def read_meta(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, str]]:
    """Read a scene meta ``<scene>.txt``.

    Returns:
        ``axis_alignment [4, 4]`` float64 (identity when absent) and all ``key -> value`` strings.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: scene meta file not found")
    fields: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            raise DataError(f"{path}: line {lineno}: expected 'key = value', got {line.strip()!r}")
        key, value = line.split("=", 1)
        fields[key.strip()] = value.strip()
    if "axisAlignment" not in fields:
        return np.eye(4), fields
    try:
        values = [float(v) for v in fields["axisAlignment"].split()]
    except ValueError:
        raise DataError(
            f"{path}: field 'axisAlignment' is not a list of numbers: {fields['axisAlignment']!r}"
        ) from None
    if len(values) != 16 or not np.all(np.isfinite(values)):
        raise DataError(f"{path}: field 'axisAlignment' must hold 16 finite numbers (row-major 4x4), got {len(values)}")
    return np.asarray(values, dtype=np.float64).reshape(4, 4), fields


def read_matrix(path: str | os.PathLike, what: str = "matrix") -> np.ndarray:
    """Read a whitespace-separated 4×4 matrix text file (float64); values may be non-finite."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        values = [float(v) for v in path.read_text(encoding="utf-8").split()]
    except ValueError:
        raise DataError(f"{path}: {what} file holds a non-numeric value") from None
    if len(values) != 16:
        raise DataError(f"{path}: {what} file must hold 16 numbers (4x4), got {len(values)}")
    return np.asarray(values, dtype=np.float64).reshape(4, 4)


def read_pose(path: str | os.PathLike) -> np.ndarray:
    """Camera→world pose ``[4, 4]`` (float64); ``-inf``/NaN entries are kept (lost tracking)."""
    return read_matrix(path, "pose")


def read_poses(paths: list[Path]) -> np.ndarray:
    """Poses of many frames ``[F, 4, 4]`` (float64, possibly non-finite)."""
    if not paths:
        return np.zeros((0, 4, 4))
    return np.stack([read_pose(p) for p in paths])


def read_color(path: str | os.PathLike) -> np.ndarray:
    """Colour frame as uint8 ``[H, W, 3]`` RGB; unreadable/corrupt images raise DataError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: colour image not found")
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: corrupt or unreadable colour image ({err})") from None


def read_depth(path: str | os.PathLike, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Depth frame in metres ``[H, W]`` float32 from a uint16 millimetre PNG (0 = invalid).

    Args:
        expected_hw: if given, the (H, W) the depth camera's intrinsics were written for; another
            size raises DataError naming both.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: depth image not found")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("I;16", "I;16B", "I", "L"):
                raise DataError(f"{path}: depth PNG must be 16-bit single channel, got mode {image.mode}")
            raw = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: corrupt or unreadable depth image ({err})") from None
    if raw.ndim != 2:
        raise DataError(f"{path}: depth image must be single channel, got shape {raw.shape}")
    if expected_hw is not None and tuple(raw.shape) != tuple(expected_hw):
        raise DataError(
            f"{path}: depth image is {raw.shape[0]}x{raw.shape[1]} (HxW), expected {expected_hw[0]}x{expected_hw[1]}"
        )
    return raw.astype(np.float32) / DEPTH_SHIFT


def read_segs(path: str | os.PathLike) -> np.ndarray:
    """``segIndices`` ``[V]`` (int64) of a ``*.segs.json`` over-segmentation."""
    data = read_json(path)
    if not isinstance(data, dict) or "segIndices" not in data:
        raise DataError(f"{path}: field 'segIndices' missing")
    try:
        return np.asarray(data["segIndices"], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: field 'segIndices' must be a list of integers") from None


def read_aggregation(path: str | os.PathLike) -> list[tuple[int, str, list[int]]]:
    """``(objectId, label, segments)`` for every entry of ``segGroups`` of an aggregation file."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("segGroups"), list):
        raise DataError(f"{path}: field 'segGroups' missing or not a list")
    groups = []
    for index, group in enumerate(data["segGroups"]):
        if not isinstance(group, dict):
            raise DataError(f"{path}: segGroups[{index}] is not an object")
        for key in ("objectId", "label", "segments"):
            if key not in group:
                raise DataError(f"{path}: segGroups[{index}]: field '{key}' missing")
        if not isinstance(group["objectId"], int) or isinstance(group["objectId"], bool):
            raise DataError(
                f"{path}: segGroups[{index}]: field 'objectId' must be an integer, got {group['objectId']!r}"
            )
        if not isinstance(group["segments"], list) or not all(isinstance(s, int) for s in group["segments"]):
            raise DataError(f"{path}: segGroups[{index}]: field 'segments' must be a list of integers")
        groups.append((group["objectId"], str(group["label"]), list(group["segments"])))
    return groups


def read_mesh_vertices(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` (float64) and vertex colours ``[V, 3]`` (uint8) of a PLY mesh."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    mesh = o3d.io.read_triangle_mesh(str(path))
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if vertices.shape[0] == 0:
        raise DataError(f"{path}: mesh has no vertices (corrupt or not a PLY mesh)")
    colors = np.asarray(mesh.vertex_colors)
    colors = (
        np.round(colors * 255).astype(np.uint8)
        if colors.shape == vertices.shape
        else np.zeros_like(vertices, dtype=np.uint8)
    )
    return vertices, colors


def read_split(path: str | os.PathLike) -> list[str]:
    """Scene ids of a split list (one per line, e.g. ``scannetv2_val.txt``).

    An id is a folder name under the data root: entries that are paths (a separator, ``..``,
    an absolute path) are refused, so a split list cannot point outside the data root.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split list not found")
    ids = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        scene_id = line.strip()
        if not scene_id:
            continue
        if (
            scene_id in (".", "..")
            or "/" in scene_id
            or "\\" in scene_id
            or "\0" in scene_id
            or Path(scene_id).is_absolute()
        ):
            raise DataError(
                f"{path}: line {lineno}: {scene_id!r} is not a scene folder name (paths are not allowed in split lists)"
            )
        ids.append(scene_id)
    return ids
