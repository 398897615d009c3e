"""Frames folder → point cloud with a VGGT-layout model (the reconstruction branch on its own), as library
functions. recon is a leaf package without an entry point: the command line for a VGGT checkpoint is
``vidllm export-pointcloud --vggt model.pt --video DIR --out points.ply`` (which reads and preprocesses
the frames with vidllm's video reader).

Frames (``.jpg/.jpeg/.png/.bmp/.tif/.tiff/.webp``, :data:`recon.files.IMAGE_SUFFIXES`) are sorted
numerically by file name (``2.jpg`` before ``10.jpg``, :func:`recon.files.numeric_sort_key`)
and preprocessed as VGGT does: width resized to ``image_size`` (518), height to the nearest
multiple of 14 keeping the aspect ratio (bicubic), centre-cropped to at most ``image_size``.
Points are in the model frame (camera of the first frame, VGGT scale); colours come from the
frames. The PLY is written atomically (temporary file + rename); open3d is imported lazily.

With ``chunk_size=N`` a video of more than ``N`` frames is reconstructed in chunks of ``N`` frames
sharing ``overlap`` frames (``layout``), aligned by Sim(3) on the shared frames
(:mod:`recon.chunked`): the forward's memory grows with ``N``, not with the frame count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.chunked import chunked_forward
from recon.files import IMAGE_SUFFIXES, atomic_write, numeric_sort_key
from recon.geometry import depth_to_world_points


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of ``folder`` sorted numerically by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"frames folder {folder}: not a directory")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=numeric_sort_key)
    if not files:
        raise ValueError(f"frames folder {folder}: no images with suffix {IMAGE_SUFFIXES}")
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
                f"frames folder {files[0].parent}: {p.name} preprocesses to {tuple(f.shape[1:])}, but {files[0].name} to {tuple(frames[0].shape[1:])}"
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
            raise ValueError(f"{path}: open3d could not write the point cloud")
    return path
