"""A ScanNet scene folder → a typed :class:`ScanNetScene` (frames, poses, intrinsics, GT boxes).

Folder layout (SensReader export + ScanNet release files)::

    <scene>/<scene>.txt                        meta (axisAlignment)
    <scene>/<scene>_vh_clean_2.ply             mesh (unaligned frame)
    <scene>/<scene>_vh_clean_2.0.010000.segs.json
    <scene>/<scene>.aggregation.json
    <scene>/color/<i>.jpg  depth/<i>.png  pose/<i>.txt     (i unpadded, sorted numerically)
    <scene>/intrinsic/intrinsic_color.txt  intrinsic/intrinsic_depth.txt

GT boxes (votenet / ScanRefer rule): the axis-aligned box over all vertices of each object,
after applying ``axisAlignment``; label = nyu40 id of the aggregation label via the label tsv;
wall / floor / ceiling (nyu40 1, 2, 22) dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidllm.data.labels import LabelMap, read_label_map
from vidllm.data.scannet_io import read_aggregation, read_matrix, read_mesh_vertices, read_meta, read_poses, read_segs
from vidllm.errors import DataError

__all__ = ["ScanNetScene", "SceneObjects", "load_scannet_scene", "compute_object_boxes", "list_frame_ids"]


@dataclass
class SceneObjects:
    """GT objects of a scene in the aligned world (structural classes already dropped).

    Attributes:
        object_ids: ``[N]`` int64 aggregation objectIds (0-based, the ids ScanRefer refers to).
        boxes: ``[N, 6]`` float64 ``[cx, cy, cz, dx, dy, dz]`` metres, aligned world.
        nyu40: ``[N]`` int64 nyu40 ids (0 when the tsv has no row for the label).
        raw_labels: the aggregation labels (raw_category).
    """

    object_ids: np.ndarray
    boxes: np.ndarray
    nyu40: np.ndarray
    raw_labels: list[str]

    def index_of(self, object_id: int) -> int:
        """Row of ``object_id`` in these arrays; -1 if the object is absent (or was dropped)."""
        hits = np.nonzero(self.object_ids == int(object_id))[0]
        return int(hits[0]) if hits.size else -1


@dataclass
class ScanNetScene:
    """A loaded ScanNet scene folder.

    Attributes:
        frame_ids: ``[F]`` int64 frame numbers sorted numerically.
        poses_c2w: ``[F, 4, 4]`` float64 camera→world in the unaligned frame (may be non-finite).
        valid: ``[F]`` bool, pose finite.
        axis_alignment: ``[4, 4]`` float64 M (unaligned → aligned world).
        intrinsic_color, intrinsic_depth: ``[3, 3]`` float64.
    """

    scene_id: str
    path: Path
    frame_ids: np.ndarray
    poses_c2w: np.ndarray
    valid: np.ndarray
    axis_alignment: np.ndarray
    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    objects: SceneObjects | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def color_path(self, frame_id: int) -> Path:
        return self.path / "color" / f"{int(frame_id)}.jpg"

    def depth_path(self, frame_id: int) -> Path:
        return self.path / "depth" / f"{int(frame_id)}.png"

    def depth_hw(self) -> tuple[int, int] | None:
        """Depth image size (H, W) from the meta (``depthHeight``/``depthWidth``), if recorded."""
        try:
            return int(self.meta["depthHeight"]), int(self.meta["depthWidth"])
        except (KeyError, ValueError):
            return None

    @property
    def aligned_c2w(self) -> np.ndarray:
        """``[F, 4, 4]`` camera→aligned-world ``M · T_c2w``."""
        with np.errstate(invalid="ignore", over="ignore"):  # lost-tracking poses stay non-finite
            return self.axis_alignment @ self.poses_c2w

    @property
    def mesh_path(self) -> Path:
        return self.path / f"{self.scene_id}_vh_clean_2.ply"


def list_frame_ids(folder: Path, suffix: str) -> np.ndarray:
    """Numeric frame names of ``folder/<i><suffix>``, sorted numerically (``[F]`` int64)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: frame folder not found")
    ids = []
    for entry in os.scandir(folder):
        name = entry.name
        if name.endswith(suffix) and name[: -len(suffix)].isdigit():
            ids.append(int(name[: -len(suffix)]))
    return np.asarray(sorted(ids), dtype=np.int64)


def compute_object_boxes(
    vertices: np.ndarray,
    seg_indices: np.ndarray,
    groups: list[tuple[int, str, list[int]]],
    axis_alignment: np.ndarray,
    label_map: LabelMap,
    source: str = "<scene>",
) -> SceneObjects:
    """Aligned AABBs of the aggregation's objects.

    Args:
        vertices: ``[V, 3]`` mesh vertices (unaligned); seg_indices ``[V]`` segment of each vertex.
        groups: ``(objectId, label, segments)`` per aggregation segGroup.
        axis_alignment: ``[4, 4]`` M.
    """
    if seg_indices.shape[0] != vertices.shape[0]:
        raise DataError(
            f"{source}: segs file has {seg_indices.shape[0]} segIndices for a mesh of {vertices.shape[0]} vertices"
        )
    aligned = vertices @ axis_alignment[:3, :3].T + axis_alignment[:3, 3]
    keep = [(oid, label, segs) for oid, label, segs in groups if not label_map.is_structural(label)]
    uniq, inverse = np.unique(seg_indices, return_inverse=True)
    seg_owner = np.full(uniq.shape[0], -1, dtype=np.int64)
    for row, (_oid, _label, segs) in enumerate(keep):
        seg_owner[np.isin(uniq, np.asarray(segs, dtype=np.int64))] = row
    owner = seg_owner[inverse]
    n = len(keep)
    lo = np.full((n, 3), np.inf)
    hi = np.full((n, 3), -np.inf)
    sel = owner >= 0
    np.minimum.at(lo, owner[sel], aligned[sel])
    np.maximum.at(hi, owner[sel], aligned[sel])
    has_points = np.isfinite(lo).all(axis=1)
    boxes = np.concatenate([(lo + hi) / 2, hi - lo], axis=1)[has_points]
    kept = [k for k, ok in zip(keep, has_points) if ok]
    return SceneObjects(
        object_ids=np.asarray([k[0] for k in kept], dtype=np.int64),
        boxes=boxes.reshape(-1, 6),
        nyu40=np.asarray([label_map.id_of(k[1]) for k in kept], dtype=np.int64),
        raw_labels=[k[1] for k in kept],
    )


def load_scannet_scene(
    scene_dir: str | os.PathLike,
    label_map: LabelMap | str | os.PathLike | None = None,
    with_objects: bool = True,
) -> ScanNetScene:
    """Load a ScanNet scene folder (frames listing, poses, intrinsics, meta and GT boxes).

    Images are not read here (see :mod:`vidllm.data.clip`); poses are.

    Args:
        scene_dir: ``.../scans/<scene_id>``; its name is the scene id.
        label_map: a :class:`LabelMap` or tsv path (default: the packaged tsv slice).
        with_objects: also read mesh + segs + aggregation and compute GT boxes.
    Raises:
        DataError: missing folder/file or malformed content (the message names the file).
    """
    path = Path(scene_dir)
    if not path.is_dir():
        raise DataError(f"{path}: ScanNet scene folder not found")
    scene_id = path.name
    axis_alignment, meta = read_meta(path / f"{scene_id}.txt")
    frame_ids = list_frame_ids(path / "pose", ".txt")
    if frame_ids.size == 0:
        raise DataError(f"{path / 'pose'}: no pose files <i>.txt")
    poses = read_poses([path / "pose" / f"{i}.txt" for i in frame_ids])
    valid = np.isfinite(poses).all(axis=(1, 2))
    k_color = read_matrix(path / "intrinsic" / "intrinsic_color.txt", "intrinsic")[:3, :3]
    k_depth = read_matrix(path / "intrinsic" / "intrinsic_depth.txt", "intrinsic")[:3, :3]
    scene = ScanNetScene(scene_id, path, frame_ids, poses, valid, axis_alignment, k_color, k_depth, meta=meta)
    if with_objects:
        labels = label_map if isinstance(label_map, LabelMap) else read_label_map(label_map)
        vertices, _ = read_mesh_vertices(scene.mesh_path)
        segs = read_segs(path / f"{scene_id}_vh_clean_2.0.010000.segs.json")
        groups = read_aggregation(path / f"{scene_id}.aggregation.json")
        scene.objects = compute_object_boxes(vertices, segs, groups, axis_alignment, labels, source=str(path))
    return scene
