"""``vidllm export-pointcloud``: video → metric, coloured point cloud (PLY) with cameras (JSON) and a PNG preview.

    vidllm export-pointcloud --checkpoint outputs/demo/stage2/model --video scene.mp4 --out scene.ply \\
        [--conf-threshold 0.2] [--voxel-size 0.02] [--max-frames 32] [--frame-sampling uniform] [--cameras] [--boxes boxes.json]
    vidllm export-pointcloud --vggt model.pt --video frames/ --out scene.ply   # a plain VGGT checkpoint (relative scale)
    vidllm export-pointcloud --checkpoint outputs/demo/stage2/model --video long.mp4 --out long.ply \\
        --max-frames 256 --chunk-size 32 --overlap 8 [--chunk-layout anchored]   # long video: Sim(3)-aligned chunks

``--video`` is anything the Python API accepts (video file, image folder, ScanNet scene folder).
Points are in the model frame (first camera; metres after real-scale alignment). Writes
``scene.ply``, ``scene.cameras.json`` (poses and intrinsics), ``scene.png`` (preview; boxes from
``--boxes``, a JSON list of ``[cx, cy, cz, dx, dy, dz]`` or ``{"pred": [...], "gt": [...]}``), and
with ``--cameras`` ``scene.cameras.ply`` (frusta as an open3d line set). ``--skip-invalid-poses`` reads only
the frames of a ScanNet scene folder whose pose is valid (what ``vidllm demo``'s export step does). All files are written
atomically. ``--vggt`` runs the reconstruction branch alone (:mod:`recon.vggt_loader`), frames
preprocessed with the long side at ``--image-size``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from recon.chunked import LAYOUTS, check_chunking, default_overlap
from recon.compiled import COMPILE_MODES, compile_for_inference


def add_chunk_arguments(parser: argparse.ArgumentParser) -> None:
    """``--chunk-size`` / ``--overlap`` / ``--chunk-layout`` (long videos: :mod:`recon.chunked`)."""
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="long videos: reconstruct in chunks of this many frames, aligned by Sim(3) on shared frames "
        "(default: all frames in one forward)",
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="frames shared by consecutive chunks, or anchor frames in every chunk (default: chunk size // 4, >= 1)",
    )
    parser.add_argument(
        "--chunk-layout",
        choices=LAYOUTS,
        default=None,
        help="'consecutive' (default): runs of frames, each aligned to the one before; 'anchored': every chunk "
        "holds the anchor frames and every G-th other frame, aligned to the first chunk (no drift; for videos "
        "of one room)",
    )


def chunk_settings(args: argparse.Namespace) -> tuple[int | None, int | None, str]:
    """``(chunk_size, overlap, layout)`` from :func:`add_chunk_arguments`'s flags (``chunk_size`` None: no chunking).

    Raises:
        ValueError: ``--overlap`` / ``--chunk-layout`` without ``--chunk-size``, or a chunking
            :func:`recon.chunked.check_chunking` refuses (named with both values).
    """
    layout = args.chunk_layout or "consecutive"
    if args.chunk_size is None:
        if args.overlap is not None or args.chunk_layout is not None:
            raise ValueError("--overlap and --chunk-layout need --chunk-size")
        return None, None, layout
    overlap = args.overlap if args.overlap is not None else default_overlap(args.chunk_size)
    try:
        check_chunking(args.chunk_size, overlap, layout)
    except ValueError as err:
        raise ValueError(f"--chunk-size {args.chunk_size} --overlap {overlap}: {err}") from None
    return args.chunk_size, overlap, layout


def parse_overrides(items: list[str]) -> dict:
    """``--override KEY=VALUE`` items (VALUE as JSON) → ``{KEY: value}``; ValueError naming a malformed item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--override {item!r}: expected KEY=VALUE (VALUE as JSON)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"--override {item!r}: VALUE must be JSON (e.g. 16 or [4,11,17,23])") from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="Vid-LLM model directory (save_pretrained)")
    src.add_argument(
        "--vggt",
        type=Path,
        help="plain VGGT checkpoint (model.pt / .safetensors): reconstruction branch only, relative scale",
    )
    parser.add_argument("--video", required=True, help="video file, image folder or ScanNet scene folder")
    parser.add_argument(
        "--skip-invalid-poses",
        action="store_true",
        help="with a ScanNet scene folder as --video: leave out the frames whose pose is not finite (lost tracking), "
        "as the evaluation clips do",
    )
    parser.add_argument("--out", required=True, type=Path, help="output PLY path")
    parser.add_argument(
        "--conf-threshold", type=float, default=0.0, help="drop the points below this confidence quantile (0–1)"
    )
    parser.add_argument("--voxel-size", type=float, default=None, help="voxel down-sampling (metres)")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="frames sampled from the video (default: the model's data.num_frames; 32 with --vggt)",
    )
    parser.add_argument(
        "--frame-sampling",
        choices=("uniform", "stride"),
        default=None,
        help="frame sampler (default: the model config's)",
    )
    add_chunk_arguments(parser)
    parser.add_argument(
        "--cameras", action="store_true", help="also write the camera frusta as a line set (<out>.cameras.ply)"
    )
    parser.add_argument("--boxes", type=Path, default=None, help="JSON boxes to draw in the preview (model frame)")
    parser.add_argument(
        "--image-size", type=int, default=518, help="--vggt only: preprocessed frame width (multiple of 14)"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --vggt: a loader override such as num_heads=16, depth_head_layers=[4,11,17,23] or "
        "global_merge_ratio=0.8 (see recon.vggt_loader.VGGT_DEFAULTS; a meta.json beside the checkpoint with "
        "'vggt_overrides' is read first); with --checkpoint: a dotted config key that leaves the weights as they "
        "are, e.g. recon.aggregator.global_merge_ratio=0.8 (token merging in the global attention, long videos)",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="none",
        help="compile the reconstruction forward with frozen weights (recon.compiled; the first forward of each "
        "shape compiles: worth it for long videos in chunks)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vidllm export-pointcloud`` (:func:`add_arguments`)."""
    parser = argparse.ArgumentParser(prog="vidllm export-pointcloud", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def _load_boxes(path: Path | None) -> list[tuple[np.ndarray, str, str]]:
    """``--boxes`` JSON → ``[(boxes [N, 6], colour, label)]`` for the preview; DataError naming the file and field."""
    from vidllm.errors import DataError

    if path is None:
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"--boxes {path}: cannot read JSON ({err})") from None
    groups = data if isinstance(data, dict) else {"boxes": data}
    colours = {"pred": "red", "gt": "lime", "boxes": "red"}
    out = []
    for name, boxes in groups.items():
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.size and (arr.ndim != 2 or arr.shape[1] != 6):
            raise DataError(
                f"--boxes {path}: field {name!r} must be a list of [cx, cy, cz, dx, dy, dz], got shape {arr.shape}"
            )
        out.append((arr.reshape(-1, 6), colours.get(name, "orange"), name))
    return out


def frusta_line_set(rec, depth: float = 0.15):
    """An open3d ``LineSet`` with one frustum (apex + image corners at ``depth`` m) per camera of ``rec``
    (a :class:`~vidllm.results.Reconstruction`: extrinsics ``[S, 3, 4]`` world→camera, intrinsics ``[S, 3, 3]``)."""
    import open3d as o3d

    points, lines = [], []
    h, w = rec.depth.shape[-2:]
    corners_px = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    for i in range(rec.extrinsics.shape[0]):  # one frustum per camera
        rot, t = rec.extrinsics[i, :, :3].astype(np.float64), rec.extrinsics[i, :, 3].astype(np.float64)
        cam_corners = (np.linalg.inv(rec.intrinsics[i].astype(np.float64)) @ corners_px.T).T * depth
        world = (cam_corners - t) @ rot  # camera → world: R^T (x − t)
        apex = -rot.T @ t
        base = len(points)
        points += [apex, *world]
        lines += [[base, base + k] for k in range(1, 5)] + [[base + k, base + k % 4 + 1] for k in range(1, 5)]
    ls = o3d.geometry.LineSet(
        o3d.utility.Vector3dVector(np.asarray(points)), o3d.utility.Vector2iVector(np.asarray(lines))
    )
    ls.colors = o3d.utility.Vector3dVector(np.tile([[0.1, 0.1, 0.9]], (len(lines), 1)))
    return ls


def video_input(args: argparse.Namespace):
    """What ``--video`` names, as the Python API takes it: the path itself, or with ``--skip-invalid-poses`` the
    list of the scene's colour frames whose pose is finite (in frame order)."""
    if not args.skip_invalid_poses:
        return args.video
    from vidllm.data.scannet import load_scannet_scene

    scene = load_scannet_scene(args.video, with_objects=False)
    return [scene.color_path(frame_id) for frame_id, valid in zip(scene.frame_ids, scene.valid) if valid]


def _forward(args: argparse.Namespace, device, chunking: tuple[int | None, int | None, str]):
    """The model of ``--checkpoint`` / ``--vggt`` on the sampled frames of ``--video`` → (outputs, images
    ``[S, 3, H, W]`` in [0, 1] on ``device``, the decoded :class:`~vidllm.video.Frames`); chunked by ``chunking``
    (:func:`chunk_settings`)."""
    import torch

    from recon.chunked import chunked_forward
    from vidllm.api import frames_to_tensor
    from vidllm.errors import DataError

    chunk_size, overlap, layout = chunking
    if args.checkpoint is not None:
        from vidllm.api import VidLLMPipeline

        pipeline = VidLLMPipeline.from_pretrained(
            args.checkpoint, device=device, compile=args.compile, overrides=args.override
        )
        forward = pipeline.geometry_forward(chunk_size, overlap, layout)
        images, frames = pipeline.load_video(video_input(args), args.max_frames, args.frame_sampling)
        return forward(images[None]), images, frames
    from recon.vggt_loader import from_vggt_checkpoint
    from vidllm.video import read_frames

    if args.image_size % 14:
        raise DataError(f"--image-size {args.image_size} must be a multiple of 14")
    meta = args.vggt.parent / "meta.json"
    overrides = json.loads(meta.read_text()).get("vggt_overrides", {}) if meta.is_file() else {}
    overrides.update(parse_overrides(args.override))
    model = compile_for_inference(from_vggt_checkpoint(args.vggt, **overrides).to(device), args.compile)
    frames = read_frames(video_input(args), args.max_frames or 32, args.frame_sampling or "uniform")
    images = frames_to_tensor(frames, args.image_size, "longer").to(device)
    with torch.no_grad():
        if chunk_size is None:
            return model(images[None]), images, frames
        return chunked_forward(model, images[None], chunk_size, overlap, layout=layout), images, frames


def export(args: argparse.Namespace) -> dict:
    """Run the export of parsed ``vidllm export-pointcloud`` arguments; returns a summary: ``points`` (written),
    ``frames``, ``scale`` (metric scale of the reconstruction, 1 for ``--vggt``) and ``files`` (kind → path)."""
    import torch

    from vidllm.errors import DataError
    from vidllm.evaluation.outputs import write_json
    from vidllm.io import atomic_write
    from vidllm.progress import progress_bar
    from vidllm.results import reconstruction_from_outputs
    from vidllm.viz import render_pointcloud

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    chunking = chunk_settings(args)
    steps = progress_bar(total=5, desc="export", unit="step")
    out, images, frames = _forward(args, device, chunking)
    steps.update(2)
    rec = reconstruction_from_outputs(out, images, 0, frames)
    if args.conf_threshold:
        rec = rec.filter_confidence(args.conf_threshold)
    if args.voxel_size:
        rec = rec.voxel_down_sample(args.voxel_size)
    if len(rec) == 0:
        raise DataError(
            f"no point left after filtering (--conf-threshold {args.conf_threshold}); nothing written to {args.out}"
        )
    steps.update(1)
    out_path = args.out if args.out.suffix.lower() == ".ply" else args.out.with_suffix(".ply")
    rec.save(out_path)
    cameras_path = write_json(out_path.with_suffix(".cameras.json"), rec.cameras_dict())
    files = {"ply": str(out_path), "cameras": str(cameras_path)}
    if args.cameras:
        import open3d as o3d

        with atomic_write(out_path.with_suffix(".cameras.ply"), None) as tmp:
            if not o3d.io.write_line_set(str(tmp), frusta_line_set(rec)):
                raise DataError(f"{out_path.with_suffix('.cameras.ply')}: open3d could not write the line set")
        files["frusta"] = str(out_path.with_suffix(".cameras.ply"))
    steps.update(1)
    preview = render_pointcloud(
        out_path.with_suffix(".png"),
        rec.points,
        rec.colors,
        _load_boxes(args.boxes),
        rec.camera_centers,
        up_axis=1,
        title=f"{len(rec)} points, {rec.depth.shape[0]} frames, scale {rec.scale:.3f}",
    )
    files["preview"] = str(preview)
    steps.update(1)
    steps.close()
    return {"points": len(rec), "frames": int(rec.depth.shape[0]), "scale": rec.scale, "files": files}


def run(args: argparse.Namespace) -> int:
    summary = export(args)
    print(
        f"wrote {summary['points']} points from {summary['frames']} frames (scale {summary['scale']:.4f}) to {summary['files']['ply']}"
    )
    for kind, path in summary["files"].items():
        if kind != "ply":
            print(f"  {kind}: {path}")
    return 0
