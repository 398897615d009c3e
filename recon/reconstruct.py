"""Frames folder → point cloud with a VGGT checkpoint (the reconstruction branch on its own).

    python -m recon.reconstruct --vggt model.pt --frames DIR --out points.ply [--conf-threshold C]
    python -m recon.reconstruct --vggt model.pt --frames DIR --out points.ply --max-frames 256 --chunk-size 32 --overlap 8 \
        [--chunk-layout consecutive|anchored]

Frames (``.jpg/.jpeg/.png/.bmp/.tif/.tiff/.webp``, :data:`recon.files.IMAGE_SUFFIXES`) are sorted
numerically by file name (``2.jpg`` before ``10.jpg``, :func:`recon.files.numeric_sort_key`)
and preprocessed as VGGT does: width resized to ``--image-size`` (518), height to the nearest
multiple of 14 keeping the aspect ratio (bicubic), centre-cropped to at most ``--image-size``.
Points are in the model frame (camera of the first frame, VGGT scale); colours come from the
frames. The PLY is written atomically (temporary file + rename); open3d is imported lazily.

With ``--chunk-size N`` a video of more than ``N`` frames is reconstructed in chunks of ``N`` frames
sharing ``--overlap`` frames (``--chunk-layout``), aligned by Sim(3) on the shared frames
(:mod:`recon.chunked`): the forward's memory grows with ``N``, not with the frame count.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.chunked import LAYOUTS, check_chunking, chunked_forward
from recon.files import IMAGE_SUFFIXES, atomic_write, numeric_sort_key
from recon.geometry import depth_to_world_points

_log = logging.getLogger("recon.reconstruct")


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of ``folder`` sorted numerically by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--frames {folder}: not a directory")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=numeric_sort_key)
    if not files:
        raise ValueError(f"--frames {folder}: no images with suffix {IMAGE_SUFFIXES}")
    return files


def preprocess_image(path: Path, image_size: int = 518, patch: int = 14) -> Tensor:
    """One frame → ``[3, H, W]`` in [0, 1] with ``W = image_size`` and ``H`` a multiple of ``patch``."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        new_h = max(patch, int(round(h * (image_size / w) / patch)) * patch)
        im = im.resize((image_size, new_h), Image.Resampling.BICUBIC)
        arr = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    if new_h > image_size:
        top = (new_h - image_size) // 2
        arr = arr[:, top : top + image_size]
    return arr


def load_frames(folder: str | Path, image_size: int = 518, max_frames: int | None = None) -> tuple[Tensor, list[Path]]:
    """Frames of ``folder`` → ``[S, 3, H, W]`` in [0, 1] and their paths."""
    files = list_frames(folder)
    if max_frames:
        idx = np.linspace(0, len(files) - 1, min(max_frames, len(files))).round().astype(int)
        files = [files[i] for i in idx]
    frames = [preprocess_image(p, image_size) for p in files]
    for p, f in zip(files, frames):
        if f.shape != frames[0].shape:
            raise ValueError(
                f"--frames: {p.name} preprocesses to {tuple(f.shape[1:])}, but {files[0].name} to {tuple(frames[0].shape[1:])}"
            )
    return torch.stack(frames), files


@torch.no_grad()
def reconstruct(
    model,
    images: Tensor,
    conf_threshold: float = 0.0,
    chunk_size: int | None = None,
    overlap: int | None = None,
    layout: str = "consecutive",
) -> tuple[np.ndarray, np.ndarray]:
    """images ``[S, 3, H, W]`` → (points ``[M, 3]``, colours ``[M, 3]``) with confidence ≥ threshold;
    with ``chunk_size``, chunked (:func:`recon.chunked.chunked_forward`: ``overlap`` shared frames, ``layout``)."""
    if chunk_size is None:
        pred = model(images[None])
    else:
        pred = chunked_forward(model, images[None], chunk_size, overlap, layout=layout)
    pts = depth_to_world_points(pred["depth"], pred["extrinsic"], pred["intrinsic"])[0]
    keep = pred["depth_conf"][0] >= conf_threshold
    colors = images.permute(0, 2, 3, 1)
    return pts[keep].double().cpu().numpy(), colors[keep].double().cpu().numpy()


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """Write a PLY with open3d, atomically (temporary file in the same folder, then rename)."""
    import open3d as o3d

    path = Path(path)
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, dtype=np.float64).reshape(-1, 3), 0, 1))
    with atomic_write(path, None) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), pcd, write_ascii=False):
            raise ValueError(f"--out {path}: open3d could not write the point cloud")
    return path


def _parse_overrides(items: list[str]) -> dict:
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


def add_chunk_arguments(p: argparse.ArgumentParser) -> None:
    """``--chunk-size`` / ``--overlap`` (long videos: :mod:`recon.chunked`)."""
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="long videos: reconstruct in chunks of this many frames, aligned by Sim(3) on shared frames "
        "(default: all frames in one forward)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="frames shared by consecutive chunks, or anchor frames in every chunk (default: chunk size // 4, >= 1)",
    )
    p.add_argument(
        "--chunk-layout",
        choices=LAYOUTS,
        default=None,
        help="'consecutive' (default): runs of frames, each aligned to the one before; 'anchored': every chunk "
        "holds the anchor frames and every G-th other frame, aligned to the first chunk (no drift; for videos "
        "of one room)",
    )


def chunk_settings(args: argparse.Namespace) -> tuple[int | None, int | None, str]:
    """``(chunk_size, overlap, layout)`` from :func:`add_chunk_arguments`'s flags (``chunk_size`` None: no chunking)."""
    layout = args.chunk_layout or "consecutive"
    if args.chunk_size is None:
        if args.overlap is not None or args.chunk_layout is not None:
            raise ValueError("--overlap and --chunk-layout need --chunk-size")
        return None, None, layout
    overlap = args.overlap if args.overlap is not None else max(1, args.chunk_size // 4)
    try:
        check_chunking(args.chunk_size, overlap, layout)
    except ValueError as err:
        raise ValueError(f"--chunk-size {args.chunk_size} --overlap {overlap}: {err}") from None
    return args.chunk_size, overlap, layout


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recon.reconstruct", description=__doc__.split("\n\n")[0])
    p.add_argument("--vggt", required=True, help="official VGGT checkpoint (model.pt or .safetensors)")
    p.add_argument("--frames", required=True, help="folder of frames (sorted numerically by name)")
    p.add_argument("--out", required=True, help="output PLY path")
    p.add_argument(
        "--conf-threshold",
        type=float,
        default=0.0,
        help="keep points whose depth confidence (1 + exp) is at least this",
    )
    p.add_argument("--image-size", type=int, default=518, help="frame width after preprocessing (multiple of 14)")
    p.add_argument("--max-frames", type=int, default=None, help="sample at most this many frames uniformly")
    add_chunk_arguments(p)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader override, e.g. num_heads=16 or depth_head_layers=[4,11,17,23] (see recon.vggt_loader.VGGT_DEFAULTS)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from recon.vggt_loader import from_vggt_checkpoint

        if args.image_size % 14:
            raise ValueError(f"--image-size {args.image_size} must be a multiple of 14")
        chunk_size, overlap, layout = chunk_settings(args)
        images, files = load_frames(args.frames, args.image_size, args.max_frames)
        model = from_vggt_checkpoint(args.vggt, **_parse_overrides(args.override)).to(args.device)
        points, colors = reconstruct(model, images.to(args.device), args.conf_threshold, chunk_size, overlap, layout)
        if len(points) == 0:
            raise ValueError(
                f"no point has confidence >= --conf-threshold {args.conf_threshold}; nothing written to {args.out}"
            )
        write_ply(args.out, points, colors)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _log.info("wrote %d points from %d frames to %s", len(points), len(files), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
