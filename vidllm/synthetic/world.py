"""Synthetic scenes written in the *real* ScanNet / ScanRefer / ScanQA / SQA3D / Multi3DRefer formats.

Output layout of :func:`generate_dataset`::

    <out>/scans/sceneXXXX_00/            a ScanNet scene folder (see vidllm.data.scannet):
        sceneXXXX_00.txt                 meta with a non-identity axisAlignment
        sceneXXXX_00_vh_clean_2.ply      mesh (unaligned frame) with per-vertex colours
        sceneXXXX_00_vh_clean_2.0.010000.segs.json, sceneXXXX_00.aggregation.json
        color/<i>.jpg  depth/<i>.png (uint16 mm, depth camera)  pose/<i>.txt (c2w, some -inf)
        intrinsic/{intrinsic,extrinsic}_{color,depth}.txt
    <out>/annotations/ScanRefer_filtered_{train,val}.json   (also the Scan2Cap references)
    <out>/annotations/ScanQA_v1.0_{train,val}.json
    <out>/annotations/multi3drefer_{train,val}.json
    <out>/annotations/v1_balanced_{questions,sqa_annotations}_{train,val}_scannetv2.json
    <out>/splits/{train,val}.txt
    <out>/synthetic_gt/sceneXXXX_00.json   generator ground truth (aligned boxes, labels, colours, visible pixels
                                         per frame and visibility in the model's uniform clip)
    <out>/synthetic_info.json              generation parameters (written last: marks completion)

Frames are ray-cast with open3d ``RaycastingScene``: exact z-depth, instance ids, Lambert
shading and a checker texture. The colour camera (``width × height``) and the depth camera
(``depth_width × depth_height``) share the pose and field of view but differ in resolution, as
in ScanNet. Each scene is a pure function of ``(seed, scene index)``.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidllm.data.labels import read_label_map
from vidllm.data.sampling import sample_uniform
from vidllm.data.visibility import VISIBLE_MIN_FRACTION, VISIBLE_MIN_FRAMES, instance_pixel_counts, visible_objects
from vidllm.synthetic.layout import TRAJECTORIES, RoomLayout, SceneObject, box_mesh, camera_trajectory, make_layout
from vidllm.synthetic.text import scene_language

__all__ = ["SynthParams", "generate_scene", "generate_dataset", "render_frames", "scene_id_of", "is_generated"]


@dataclass
class SynthParams:
    """Generation parameters of a synthetic dataset.

    Language (descriptions, questions, queries) is generated only about objects **visible in the
    clip the model is given**: the ``clip_frames`` frames spread uniformly over the valid frames
    (:func:`vidllm.data.sampling.sample_uniform`, as ``data.frame_sampling: uniform``), with the rule
    of :func:`vidllm.data.visibility.visible_objects` (``visible_min_fraction`` of the colour image in
    ``>= visible_min_frames`` of those frames, counted on the exact instance map of the ray caster).
    """

    num_frames: int = 32
    width: int = 224
    height: int = 168
    depth_width: int = 160
    depth_height: int = 120
    hfov_deg: float = 70.0
    invalid_pose_frames: int = 2
    min_objects: int = 4
    max_objects: int = 12
    jpeg_quality: int = 92
    trajectory: str = "loop"
    arc_degrees: float = 120.0
    clip_frames: int = 8
    visible_min_fraction: float = VISIBLE_MIN_FRACTION
    visible_min_frames: int = VISIBLE_MIN_FRAMES

    def __post_init__(self) -> None:
        for name in (
            "num_frames",
            "width",
            "height",
            "depth_width",
            "depth_height",
            "clip_frames",
            "visible_min_frames",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"synthetic {name} must be >= 1, got {getattr(self, name)}")
        if not 4 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"synthetic object counts need 4 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if self.trajectory not in TRAJECTORIES:
            raise ValueError(f"synthetic trajectory {self.trajectory!r}; expected one of {list(TRAJECTORIES)}")
        if not 0 < self.arc_degrees <= 360:
            raise ValueError(f"synthetic arc_degrees must be in (0, 360], got {self.arc_degrees}")
        if not 0 <= self.visible_min_fraction <= 1:
            raise ValueError(f"synthetic visible_min_fraction must be in [0, 1], got {self.visible_min_fraction}")


def scene_id_of(index: int) -> str:
    return f"scene{index:04d}_00"


def _intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    f = (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _scene_mesh(layout: RoomLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[SceneObject]]:
    """All parts as one mesh: vertices ``[V, 3]``, triangles ``[T, 3]``, part id per vertex ``[V]``,
    object index per triangle ``[T]`` and the object list (structure first)."""
    everything = layout.structure + layout.objects
    verts, tris, part_of_vertex, obj_of_tri = [], [], [], []
    part = 0
    for index, obj in enumerate(everything):
        for lo, hi in obj.parts:
            v, t = box_mesh(lo, hi)
            tris.append(t + sum(len(x) for x in verts))
            verts.append(v)
            part_of_vertex.append(np.full(len(v), part))
            obj_of_tri.append(np.full(len(t), index))
            part += 1
    return (
        np.concatenate(verts),
        np.concatenate(tris),
        np.concatenate(part_of_vertex),
        np.concatenate(obj_of_tri),
        everything,
    )


def render_frames(vertices, triangles, obj_of_tri, colors, c2w, intrinsics, width, height, shade=True):
    """Ray-cast frames of a triangle mesh (world = the mesh's frame).

    Args:
        vertices ``[V, 3]``, triangles ``[T, 3]``, obj_of_tri ``[T]``, colors ``[O, 3]`` uint8 per object,
        c2w ``[F, 4, 4]`` camera→world, intrinsics ``[3, 3]``.
    Returns:
        ``depth [F, H, W]`` float32 z-depth metres (0 = no hit), ``instance [F, H, W]`` int32
        object index (-1 = none) and, if ``shade``, ``rgb [F, H, W, 3]`` uint8.
    """
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(triangles.astype(np.uint32)))
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    cam_dirs = np.stack(
        [(u - intrinsics[0, 2]) / intrinsics[0, 0], (v - intrinsics[1, 2]) / intrinsics[1, 1], np.ones_like(u)], -1
    )
    # camera z-component 1 → t_hit is z-depth; one [HW, 3] @ [3, 3] product per frame (a batched matmul: einsum was 10x slower)
    dirs = (cam_dirs.reshape(1, -1, 3) @ np.asarray(c2w[:, :3, :3]).transpose(0, 2, 1)).reshape(
        len(c2w), height, width, 3
    )
    origins = np.broadcast_to(c2w[:, None, None, :3, 3], dirs.shape)
    rays = np.concatenate([origins, dirs], -1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t_hit = hit["t_hit"].numpy()
    prim = hit["primitive_ids"].numpy().astype(np.int64)
    ok = np.isfinite(t_hit)
    depth = np.where(ok, t_hit, 0.0).astype(np.float32)
    instance = np.where(ok, obj_of_tri[np.where(ok, prim, 0)], -1).astype(np.int32)
    if not shade:
        return depth, instance, None
    normals = hit["primitive_normals"].numpy()
    light = np.array([0.35, 0.5, 0.8]) / np.linalg.norm([0.35, 0.5, 0.8])
    lambert = 0.55 + 0.45 * np.abs(normals @ light)
    points = origins + dirs * depth[..., None]
    cell = np.where(instance < 6, 0.25, 0.08)[..., None]  # coarse checker on structure, fine on objects
    checker = (np.floor(points / cell).astype(np.int64).sum(-1) % 2) * 0.12 + 0.88
    base = colors[np.maximum(instance, 0)].astype(np.float64)
    rgb = np.clip(base * (lambert * checker)[..., None], 0, 255)
    rgb[~ok] = 0
    return depth, instance, rgb.astype(np.uint8)


def _write_matrix(path: Path, matrix: np.ndarray) -> None:
    path.write_text(
        "\n".join(
            " ".join(f"{x:.9g}" if np.isfinite(x) else ("-inf" if x < 0 else "inf" if x > 0 else "nan") for x in row)
            for row in matrix
        )
        + "\n"
    )


def _write_ply(path: Path, vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray) -> None:
    """Binary little-endian PLY as ScanNet ships it (x y z float, red green blue alpha uchar, faces)."""
    vdtype = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    )
    vrec = np.empty(len(vertices), dtype=vdtype)
    vrec["x"], vrec["y"], vrec["z"] = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    vrec["red"], vrec["green"], vrec["blue"], vrec["alpha"] = colors[:, 0], colors[:, 1], colors[:, 2], 255
    fdtype = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
    frec = np.empty(len(triangles), dtype=fdtype)
    frec["n"], frec["i"] = 3, triangles
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {len(triangles)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vrec.tobytes())
        handle.write(frec.tobytes())


def _alignment(rng: np.random.Generator) -> np.ndarray:
    """A non-identity axisAlignment M (rotation about z plus a translation)."""
    theta = rng.uniform(-np.pi, np.pi)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    m[:3, 3] = [rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-0.1, 0.1)]
    return m


def generate_scene(out: str | os.PathLike, index: int, seed: int = 0, params: SynthParams | None = None) -> dict:
    """Write scene ``index`` under ``<out>/scans`` and its ground truth under ``<out>/synthetic_gt``.

    Returns:
        the scene's annotation records (see :func:`vidllm.synthetic.text.scene_language`).
    """
    from PIL import Image

    params = params or SynthParams()
    rng = np.random.default_rng([seed, index])
    scene_id = scene_id_of(index)
    root = Path(out) / "scans" / scene_id
    for sub in ("color", "depth", "pose", "intrinsic"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    layout = make_layout(rng, params.min_objects, params.max_objects)
    verts, tris, part_of_vertex, obj_of_tri, everything = _scene_mesh(layout)
    colors = np.array([o.rgb for o in everything], dtype=np.uint8)
    m = _alignment(rng)
    m_inv = np.linalg.inv(m)
    c2w_aligned = camera_trajectory(layout, params.num_frames, rng, params.trajectory, params.arc_degrees)
    k_color = _intrinsics(params.width, params.height, params.hfov_deg)
    k_depth = _intrinsics(params.depth_width, params.depth_height, params.hfov_deg)
    _, instance, rgb = render_frames(verts, tris, obj_of_tri, colors, c2w_aligned, k_color, params.width, params.height)
    depth, _, _ = render_frames(
        verts, tris, obj_of_tri, colors, c2w_aligned, k_depth, params.depth_width, params.depth_height, shade=False
    )
    # ---- mesh, segs, aggregation in the unaligned frame
    unaligned = verts @ m_inv[:3, :3].T + m_inv[:3, 3]
    obj_of_vertex = np.zeros(len(verts), dtype=np.int64)
    obj_of_vertex[tris.reshape(-1)] = np.repeat(obj_of_tri, 3)
    _write_ply(root / f"{scene_id}_vh_clean_2.ply", unaligned, tris, colors[obj_of_vertex])
    seg_ids = part_of_vertex * 7 + 3  # arbitrary non-contiguous segment ids, as in ScanNet
    (root / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps(
            {
                "params": {"kThresh": "0.0001", "segMinVerts": "20"},
                "sceneId": f"{scene_id}_vh_clean_2",
                "segIndices": seg_ids.tolist(),
            }
        )
    )
    groups = []
    for oid, obj in enumerate(everything):
        segs = sorted(set(seg_ids[obj_of_vertex == oid].tolist()))
        groups.append({"id": oid, "objectId": oid, "segments": segs, "label": obj.category})
    (root / f"{scene_id}.aggregation.json").write_text(
        json.dumps(
            {
                "sceneId": f"scannet.{scene_id}",
                "appId": "vidllm.synthetic",
                "segGroups": groups,
                "segmentsFile": f"scannet.{scene_id}_vh_clean_2.0.010000.segs.json",
            }
        )
    )
    (root / f"{scene_id}.txt").write_text(
        f"axisAlignment = {' '.join(f'{x:.9g}' for x in m.reshape(-1))}\n"
        f"colorHeight = {params.height}\ncolorWidth = {params.width}\ndepthHeight = {params.depth_height}\ndepthWidth = {params.depth_width}\n"
        f"fx_color = {k_color[0, 0]:.6f}\nfx_depth = {k_depth[0, 0]:.6f}\nfy_color = {k_color[1, 1]:.6f}\nfy_depth = {k_depth[1, 1]:.6f}\n"
        f"mx_color = {k_color[0, 2]:.6f}\nmx_depth = {k_depth[0, 2]:.6f}\nmy_color = {k_color[1, 2]:.6f}\nmy_depth = {k_depth[1, 2]:.6f}\n"
        f"numColorFrames = {params.num_frames}\nnumDepthFrames = {params.num_frames}\nsceneType = Living room / Lounge\n"
    )
    for name, k in (("intrinsic_color", k_color), ("intrinsic_depth", k_depth)):
        k4 = np.eye(4)
        k4[:3, :3] = k
        _write_matrix(root / "intrinsic" / f"{name}.txt", k4)
    for name in ("extrinsic_color", "extrinsic_depth"):
        _write_matrix(root / "intrinsic" / f"{name}.txt", np.eye(4))
    # ---- frames (some with lost tracking: -inf pose)
    lost = set(
        rng.choice(
            np.arange(1, params.num_frames), size=min(params.invalid_pose_frames, params.num_frames - 1), replace=False
        ).tolist()
    )
    c2w_unaligned = m_inv @ c2w_aligned
    depth_mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    for i in range(params.num_frames):  # file writing per frame (I/O, not a tensor hot path)
        Image.fromarray(rgb[i]).save(root / "color" / f"{i}.jpg", quality=params.jpeg_quality)
        Image.fromarray(depth_mm[i]).save(root / "depth" / f"{i}.png")
        _write_matrix(root / "pose" / f"{i}.txt", np.full((4, 4), -np.inf) if i in lost else c2w_unaligned[i])
    # ---- visibility: pixels of each object per frame (exact instance map) and the model's uniform clip
    first = len(layout.structure)
    pixels = instance_pixel_counts(instance, len(everything))[:, first:]  # [F, O] objects only
    clip = sample_uniform(np.array([i for i in range(params.num_frames) if i not in lost]), params.clip_frames)
    visible = visible_objects(
        pixels[clip], params.width * params.height, params.visible_min_fraction, params.visible_min_frames
    )
    gt = {
        "scene_id": scene_id,
        "axis_alignment": m.tolist(),
        "room_size": list(layout.size),
        "objects": [
            {
                "object_id": first + k,
                "raw_category": o.category,
                "color": o.color,
                "box": o.box.tolist(),
                "pixels_per_frame": pixels[:, k].tolist(),
                "visible_in_clip": bool(visible[k]),
            }
            for k, o in enumerate(layout.objects)
        ],
        "invalid_pose_frames": sorted(lost),
        "visibility": {
            "clip_frames": clip.tolist(),
            "image_pixels": params.width * params.height,
            "min_fraction": params.visible_min_fraction,
            "min_frames": params.visible_min_frames,
        },
    }
    (Path(out) / "synthetic_gt").mkdir(parents=True, exist_ok=True)
    (Path(out) / "synthetic_gt" / f"{scene_id}.json").write_text(json.dumps(gt))
    return scene_language(scene_id, layout, rng, visible)


def _scene_job(job: tuple[str, int, int, dict]) -> tuple[int, dict]:
    out, index, seed, params = job
    return index, generate_scene(out, index, seed, SynthParams(**params))


def is_generated(out: str | os.PathLike) -> bool:
    """True when ``out`` holds a completed synthetic dataset (``synthetic_info.json`` present)."""
    return (Path(out) / "synthetic_info.json").is_file()


def generate_dataset(
    out: str | os.PathLike,
    num_scenes: int,
    seed: int = 0,
    params: SynthParams | None = None,
    workers: int | None = None,
    val_fraction: float = 0.2,
) -> dict:
    """Generate ``num_scenes`` scenes plus train/val annotation files and split lists.

    Scenes are rendered in parallel (``workers`` processes, default: the CPU count); the result is
    identical for any worker count. Returns the info dict written to ``synthetic_info.json``.
    """
    if num_scenes < 1:
        raise ValueError(f"synthetic num_scenes must be >= 1, got {num_scenes}")
    params = params or SynthParams()
    read_label_map()  # fail early if the packaged label tsv is missing
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(str(out), i, seed, asdict(params)) for i in range(num_scenes)]
    workers = max(1, min(workers or os.cpu_count() or 1, num_scenes))
    if workers == 1:
        results = dict(map(_scene_job, jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = dict(pool.map(_scene_job, jobs))
    n_val = max(1, round(num_scenes * val_fraction)) if num_scenes > 1 else 0
    split_of = {i: ("val" if i >= num_scenes - n_val else "train") for i in range(num_scenes)}
    (out / "splits").mkdir(exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    for split in ("train", "val"):
        indices = [i for i in range(num_scenes) if split_of[i] == split]
        (out / "splits" / f"{split}.txt").write_text("".join(f"{scene_id_of(i)}\n" for i in indices))
        merged = {k: [r for i in indices for r in results[i][k]] for k in results[0]}
        files = {
            f"ScanRefer_filtered_{split}.json": merged["scanrefer"],
            f"ScanQA_v1.0_{split}.json": merged["scanqa"],
            f"multi3drefer_{split}.json": merged["multi3drefer"],
            f"v1_balanced_questions_{split}_scannetv2.json": {
                "info": "vidllm synthetic",
                "questions": merged["sqa3d_questions"],
            },
            f"v1_balanced_sqa_annotations_{split}_scannetv2.json": {
                "info": "vidllm synthetic",
                "annotations": merged["sqa3d_annotations"],
            },
        }
        for name, content in files.items():
            (out / "annotations" / name).write_text(json.dumps(content, indent=1))
    info = {
        "generator": "vidllm.synthetic.world",
        "num_scenes": num_scenes,
        "seed": seed,
        "params": asdict(params),
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / "synthetic_info.json").write_text(json.dumps(info, indent=1))
    return info
