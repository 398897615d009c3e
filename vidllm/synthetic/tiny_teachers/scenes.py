"""Whole synthetic scenes as tensors, for the teachers' training and held-out evaluation.

A scene's valid frames are read once with the same preprocessing as the training clips
(:func:`vidllm.data.clip.load_clip`: resize + centre crop, depth resampled into the colour
camera, extrinsics relative to the first valid frame). Object names (``"<colour> <category>"``)
and aligned-world boxes come from the generator's ground truth ``synthetic_gt/<scene>.json``.

Which objects a frame shows (:func:`object_pixel_counts`): every valid GT depth pixel is lifted
to the aligned world (``X = W · [R | t]⁻¹ · d·K⁻¹[u, v, 1]``, ``W = world_from_model``) and
counted for each object whose box (grown by ``margin``) contains it. The counts are the object's
visible area in pixels (occlusion is handled by the depth map: hidden surfaces are not lifted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidllm.config import DataConfig
from vidllm.data.clip import load_clip
from vidllm.data.dataset import split_scene_ids
from vidllm.data.labels import read_label_map
from vidllm.data.sampling import valid_frame_indices
from vidllm.data.scannet import load_scannet_scene
from vidllm.data.visibility import box_pixel_counts, frame_box_masks
from vidllm.errors import DataError

__all__ = [
    "SceneFrames",
    "load_split_scenes",
    "object_pixel_counts",
    "pixel_object_index",
    "patch_object_labels",
    "clip_windows",
]


@dataclass
class SceneFrames:
    """All valid frames of one scene.

    Attributes:
        images: ``[F, 3, H, W]`` RGB in [0, 1].
        depth: ``[F, H, W]`` metres (0 = invalid).
        extrinsics: ``[F, 3, 4]`` world→camera, model frame = the first valid frame.
        intrinsics: ``[F, 3, 3]`` pixels of ``images``.
        world_from_model: ``[4, 4]`` model frame → aligned world.
        object_names: ``O`` names ``"<colour> <category>"`` (empty when the scene has no generator GT).
        object_boxes: ``[O, 6]`` aligned-world boxes ``[cx, cy, cz, dx, dy, dz]``.
    """

    scene_id: str
    images: Tensor
    depth: Tensor
    extrinsics: Tensor
    intrinsics: Tensor
    world_from_model: Tensor
    object_names: list[str]
    object_boxes: Tensor

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])


def _generator_objects(root: Path, scene_id: str, required: bool) -> tuple[list[str], Tensor]:
    path = root / "synthetic_gt" / f"{scene_id}.json"
    if not path.is_file():
        if required:
            raise DataError(
                f"{path}: generator ground truth not found; the semantic teacher needs the synthetic scenes' object colours"
            )
        return [], torch.zeros(0, 6)
    try:
        objects = json.loads(path.read_text())["objects"]
        names = [f"{o['color']} {o['raw_category']}" for o in objects]
        boxes = torch.tensor([o["box"] for o in objects], dtype=torch.float32).reshape(-1, 6)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{path}: malformed generator ground truth ({err}); expected objects[] with 'color', 'raw_category', 'box'"
        ) from None
    return names, boxes


def load_split_scenes(
    root: str | Path, split: str, image_size: int, resize_side: str = "shorter", require_objects: bool = False
) -> list[SceneFrames]:
    """Every scene of ``split`` (``<root>/splits/<split>.txt``) with all its valid frames.

    Args:
        root: a synthetic dataset root (``scans/``, ``splits/``, ``synthetic_gt/``).
        split: 'train' or 'val'.
        image_size: target side length (``data.image_size``); sides are cropped to multiples of 14.
        require_objects: raise when a scene has no generator ground truth (the semantic teacher).
    """
    root = Path(root)
    cfg = DataConfig(root=str(root))
    scenes = []
    label_map = read_label_map(None)
    for scene_id in split_scene_ids(cfg, split):
        scene = load_scannet_scene(root / "scans" / scene_id, label_map=label_map)
        clip = load_clip(scene, valid_frame_indices(scene.valid, scene_id), image_size, resize_side)
        names, boxes = _generator_objects(root, scene_id, require_objects)
        scenes.append(
            SceneFrames(
                scene_id=scene_id,
                images=clip["images"],
                depth=clip["depth"],
                extrinsics=clip["extrinsics"],
                intrinsics=clip["intrinsics"],
                world_from_model=clip["world_from_model"],
                object_names=names,
                object_boxes=boxes,
            )
        )
    if not scenes:
        raise DataError(f"{root}/splits/{split}.txt lists no scenes")
    return scenes


def object_pixel_counts(scene: SceneFrames, margin: float = 0.02) -> Tensor:
    """Visible pixels of each object in each frame, ``[F, O]`` int64 (see the module docstring).

    Args:
        scene: the scene (depth, poses, intrinsics, object boxes).
        margin: metres added on every side of a box (surface points lie on its faces).
    """
    return box_pixel_counts(
        scene.depth, scene.extrinsics, scene.intrinsics, scene.world_from_model, scene.object_boxes, margin
    )


def pixel_object_index(scene: SceneFrames, margin: float = 0.02) -> Tensor:
    """The object each pixel shows, ``[F, H, W]`` int64 (index into ``scene.object_names``; -1: no object or
    invalid depth). A pixel is lifted like :func:`object_pixel_counts`; of the boxes (grown by ``margin``)
    that contain it, the smallest by volume wins (a picture on a wall box, a box on a table)."""
    boxes = scene.object_boxes.double().reshape(-1, 6)
    f, h, w = scene.depth.shape
    if boxes.shape[0] == 0:
        return torch.full((f, h, w), -1, dtype=torch.long)
    volume = (boxes[:, 3:] + 2 * margin).prod(-1)  # [O] of the grown boxes
    index = []
    for inside in frame_box_masks(
        scene.depth, scene.extrinsics, scene.intrinsics, scene.world_from_model, boxes, margin
    ):  # [HW, O]
        best = torch.where(inside, volume, torch.full_like(volume, float("inf"))).argmin(-1)
        index.append(torch.where(inside.any(-1), best, torch.full_like(best, -1)))
    return torch.stack(index).view(f, h, w)


def patch_object_labels(index: Tensor, grid: tuple[int, int], min_share: float = 0.5) -> Tensor:
    """Per-patch object labels ``[F, gh, gw]`` int64 from a pixel map ``index`` ``[F, H, W]`` (-1 = none):
    the object covering the largest share of the patch's area (the image is split evenly into ``grid``
    cells, as a resize to the patch grid does), or -1 when that share is below ``min_share``."""
    f = index.shape[0]
    num = int(index.max()) + 2  # -1 → class 0
    onehot = F.one_hot(index + 1, num).permute(0, 3, 1, 2).float()  # [F, O+1, H, W]
    share = F.adaptive_avg_pool2d(onehot, grid)  # [F, O+1, gh, gw]
    share[:, 0] = -1.0  # "no object" never wins
    value, label = share.max(dim=1)
    label = label - 1
    return torch.where(value >= min_share, label, torch.full_like(label, -1)).view(f, *grid)


def clip_windows(num_frames: int, span: int, clip_frames: int, count: int) -> np.ndarray:
    """``count`` evenly spread evaluation clips ``[count, clip_frames]`` of frame indices: each clip
    takes ``clip_frames`` evenly spaced frames of a window of ``span`` consecutive frames."""
    span = min(span, num_frames)
    starts = np.floor(np.linspace(0, num_frames - span, count) + 0.5).astype(np.int64)
    offsets = np.floor(np.linspace(0, span - 1, clip_frames) + 0.5).astype(np.int64)
    return starts[:, None] + offsets[None, :]
