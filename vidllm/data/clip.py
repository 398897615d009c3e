"""Clip preprocessing: sampled frames of a ScanNet scene → the model's tensors (README "Conventions").

* Colour: resize so that the side chosen by ``resize_side`` ('shorter' or 'longer') equals
  ``image_size`` (bilinear, antialiased, pixel-centre convention ``u' = (u + ½)·s − ½``), then
  centre-crop both sides down to multiples of 14. Intrinsics follow exactly. :func:`preprocess_frames`
  is the one implementation: training clips, evaluation clips, the Python API (``load_video``) and the
  export tool all call it, so the same frame gives the model the same pixels on every path.
* Depth: **resampled into the output colour camera** by nearest neighbour. Colour and depth
  cameras share the pose (ScanNet exports are registered), so an output pixel ``(u, v)`` looks
  along the ray ``K_out⁻¹ [u, v, 1]`` whose depth-image position is ``K_depth K_out⁻¹ [u, v, 1]``;
  the nearest depth pixel gives the value (0 outside the depth image). Nearest neighbour keeps
  depth edges sharp (no interpolated flying points) and 0 = invalid stays 0.
* Poses: ``W_i = M · T_c2w,i`` (aligned camera→world); ``extrinsics_i = inv(W_i) · W_0`` (world→
  camera with the model frame = camera 0, so frame 0 is the identity); ``world_from_model = W_0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vidllm.data.scannet import ScanNetScene
from vidllm.data.scannet_io import read_color, read_depth
from vidllm.errors import DataError

__all__ = [
    "output_geometry",
    "frame_resize_hw",
    "preprocess_frames",
    "resize_crop_intrinsics",
    "resize_crop_images",
    "resample_depth",
    "relative_extrinsics",
    "load_clip",
]


def output_geometry(
    height: int, width: int, image_size: int, resize_side: str = "shorter"
) -> tuple[int, int, int, int, int, int]:
    """Sizes of the resize + centre crop.

    Returns:
        ``(resized_h, resized_w, crop_top, crop_left, out_h, out_w)``; ``out_*`` are multiples of 14.
    """
    side = min(height, width) if resize_side == "shorter" else max(height, width)
    scale = image_size / side
    rh, rw = max(14, round(height * scale)), max(14, round(width * scale))
    oh, ow = rh // 14 * 14, rw // 14 * 14
    return rh, rw, (rh - oh) // 2, (rw - ow) // 2, oh, ow


def frame_resize_hw(
    height: int, width: int, out_hw: tuple[int, int], image_size: int, resize_side: str = "shorter"
) -> tuple[int, int]:
    """Size one frame is resized to before its centre crop to ``out_hw``.

    A frame whose own :func:`output_geometry` gives ``out_hw`` (every frame of a clip of one size) uses
    that resize exactly; a frame of another size (mixed-size image folders) uses the smallest
    aspect-keeping size that covers ``out_hw``.
    """
    rh, rw, _, _, oh, ow = output_geometry(height, width, image_size, resize_side)
    if (oh, ow) == tuple(out_hw):
        return rh, rw
    oh, ow = out_hw
    s = max(oh / height, ow / width)
    return max(oh, math.ceil(height * s - 1e-6)), max(ow, math.ceil(width * s - 1e-6))


def preprocess_frames(frames, image_size: int, resize_side: str = "shorter") -> torch.Tensor:
    """Decoded RGB frames ``[H, W, 3]`` uint8 (sizes may differ) → the model's input ``[S, 3, oh, ow]`` float in [0, 1].

    The output size follows the first frame (:func:`output_geometry`); each frame is resized by
    :func:`frame_resize_hw` (bilinear, antialiased) and centre-cropped. The one preprocessing of
    training, evaluation, the API and export.
    """
    frames = list(frames)
    if not frames:
        raise DataError("no frames to preprocess")
    h0, w0 = np.asarray(frames[0]).shape[:2]
    _, _, _, _, oh, ow = output_geometry(h0, w0, image_size, resize_side)
    out = []
    for img in frames:  # one resize per frame: frames may differ in size
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise DataError(f"preprocess_frames: expected RGB frames [H, W, 3], got shape {arr.shape}")
        t = torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)
        rh, rw = frame_resize_hw(arr.shape[0], arr.shape[1], (oh, ow), image_size, resize_side)
        out.append(resize_crop_images(t, (rh, rw), ((rh - oh) // 2, (rw - ow) // 2, oh, ow))[0])
    return torch.stack(out).contiguous()


def resize_crop_intrinsics(
    intrinsics: np.ndarray, in_hw: tuple[int, int], resized_hw: tuple[int, int], crop_tl: tuple[int, int]
) -> np.ndarray:
    """Intrinsics ``[3, 3]`` after resizing ``in_hw`` → ``resized_hw`` and cropping at ``(top, left)``."""
    sy, sx = resized_hw[0] / in_hw[0], resized_hw[1] / in_hw[1]
    k = np.array(intrinsics, dtype=np.float64).copy()
    k[0, 0] *= sx
    k[1, 1] *= sy
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5 - crop_tl[1]
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5 - crop_tl[0]
    return k


def resize_crop_images(
    images: torch.Tensor, resized_hw: tuple[int, int], crop: tuple[int, int, int, int]
) -> torch.Tensor:
    """``[S, 3, H, W]`` float in [0, 1] → resized (bilinear, antialias) and cropped ``[S, 3, oh, ow]``."""
    top, left, oh, ow = crop
    if tuple(images.shape[-2:]) != tuple(resized_hw):
        images = F.interpolate(images, size=resized_hw, mode="bilinear", align_corners=False, antialias=True).clamp_(
            0, 1
        )
    return images[..., top : top + oh, left : left + ow].contiguous()


def resample_depth(
    depth: torch.Tensor, k_depth: np.ndarray, k_out: np.ndarray, out_hw: tuple[int, int]
) -> torch.Tensor:
    """Nearest-neighbour resampling of depth ``[S, Hd, Wd]`` into the output camera ``[S, oh, ow]``.

    The two cameras share centre and orientation and differ only in intrinsics.
    """
    oh, ow = out_hw
    v, u = np.meshgrid(np.arange(oh, dtype=np.float64), np.arange(ow, dtype=np.float64), indexing="ij")
    ud = k_depth[0, 0] * (u - k_out[0, 2]) / k_out[0, 0] + k_depth[0, 2]
    vd = k_depth[1, 1] * (v - k_out[1, 2]) / k_out[1, 1] + k_depth[1, 2]
    iu, iv = np.floor(ud + 0.5).astype(np.int64), np.floor(vd + 0.5).astype(np.int64)
    hd, wd = depth.shape[-2:]
    inside = (iu >= 0) & (iu < wd) & (iv >= 0) & (iv < hd)
    flat = torch.from_numpy(np.where(inside, iv * wd + iu, 0).reshape(-1))
    out = depth.reshape(depth.shape[0], -1)[:, flat].reshape(depth.shape[0], oh, ow)
    return out * torch.from_numpy(inside).to(out.dtype)


def relative_extrinsics(aligned_c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[S, 4, 4]`` aligned camera→world → (extrinsics ``[S, 3, 4]`` relative to frame 0, world_from_model ``[4, 4]``)."""
    rot = aligned_c2w[:, :3, :3]
    trans = aligned_c2w[:, :3, 3]
    w2c = np.zeros_like(aligned_c2w)
    w2c[:, :3, :3] = rot.transpose(0, 2, 1)
    w2c[:, :3, 3] = -np.einsum("sji,sj->si", rot, trans)
    w2c[:, 3, 3] = 1.0
    extrinsics = w2c @ aligned_c2w[0]
    return extrinsics[:, :3, :], aligned_c2w[0].copy()


def load_clip(scene: ScanNetScene, frame_indices: np.ndarray, image_size: int, resize_side: str = "shorter") -> dict:
    """Read and preprocess the frames ``frame_indices`` (indices into ``scene.frame_ids``, valid poses).

    Returns a dict:
        ``images [S, 3, H, W]`` float32 [0, 1]; ``depth [S, H, W]`` metres (0 invalid);
        ``extrinsics [S, 3, 4]``; ``intrinsics [S, 3, 3]``; ``world_from_model [4, 4]``;
        ``frame_ids [S]`` int64; ``gt_boxes [N, 6]`` (aligned world), ``gt_box_ids [N]``,
        ``gt_labels [N]`` (nyu40); ``scene_id`` str.
    """
    frame_indices = np.asarray(frame_indices, dtype=np.int64)
    if not scene.valid[frame_indices].all():
        bad = scene.frame_ids[frame_indices[~scene.valid[frame_indices]]].tolist()
        raise DataError(f"{scene.path}: frames {bad} have invalid poses and cannot be part of a clip")
    frame_ids = scene.frame_ids[frame_indices]
    colors = []
    for fid in frame_ids:  # file decoding, one image per frame (the DataLoader workers parallelise this)
        img = read_color(scene.color_path(fid))
        if colors and img.shape != colors[0].shape:
            raise DataError(
                f"{scene.color_path(fid)}: colour image is {img.shape[0]}x{img.shape[1]}, other frames are {colors[0].shape[0]}x{colors[0].shape[1]}"
            )
        colors.append(img)
    h, w = colors[0].shape[:2]
    depth_hw = scene.depth_hw()
    depths = []
    for fid in frame_ids:
        d = read_depth(scene.depth_path(fid), depth_hw or (depths[0].shape if depths else None))
        depths.append(d)
    rh, rw, top, left, oh, ow = output_geometry(h, w, image_size, resize_side)
    images = preprocess_frames(colors, image_size, resize_side)
    k_out = resize_crop_intrinsics(scene.intrinsic_color, (h, w), (rh, rw), (top, left))
    depth = resample_depth(torch.from_numpy(np.stack(depths)), scene.intrinsic_depth, k_out, (oh, ow))
    extrinsics, world_from_model = relative_extrinsics(scene.aligned_c2w[frame_indices])
    if not math.isfinite(float(np.abs(extrinsics).sum())):
        raise DataError(f"{scene.path}: non-finite camera pose in the sampled frames {frame_ids.tolist()}")
    objects = scene.objects
    n = 0 if objects is None else len(objects.object_ids)
    return {
        "scene_id": scene.scene_id,
        "frame_ids": torch.from_numpy(frame_ids.copy()),
        "images": images,
        "depth": depth.float(),
        "extrinsics": torch.from_numpy(extrinsics).float(),
        "intrinsics": torch.from_numpy(np.repeat(k_out[None], len(frame_ids), 0)).float(),
        "world_from_model": torch.from_numpy(world_from_model).float(),
        "gt_boxes": torch.from_numpy(objects.boxes).float() if n else torch.zeros(0, 6),
        "gt_box_ids": torch.from_numpy(objects.object_ids.copy()) if n else torch.zeros(0, dtype=torch.long),
        "gt_labels": torch.from_numpy(objects.nyu40.copy()) if n else torch.zeros(0, dtype=torch.long),
    }
