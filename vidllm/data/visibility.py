"""Which objects a clip shows: per-frame visible pixels of each object and the "visible" rule.

One rule decides visibility everywhere (the synthetic generator, which only asks about visible
objects, and the evaluation, which reports figures on queries whose target is visible): an object is
**visible in a clip** when it covers at least ``min_fraction`` of the image in at least
``min_frames`` of the clip's frames. A fraction (not a pixel count) keeps the rule independent of the
resolution: the generator counts at the rendered size, the evaluation at the model's input size.

Two ways to count an object's pixels per frame:

* :func:`instance_pixel_counts` — from a per-pixel instance map (the generator's ray caster);
* :func:`box_pixel_counts` — from GT depth and GT boxes (any ScanNet-format data): every valid
  depth pixel is lifted to the aligned world and counted for each object whose box (grown by
  ``margin``) contains it. Occlusion comes from the depth map (hidden surfaces are not lifted).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from recon.geometry import depth_to_world_points

__all__ = [
    "VISIBLE_MIN_FRACTION",
    "VISIBLE_MIN_FRAMES",
    "instance_pixel_counts",
    "frame_box_masks",
    "box_pixel_counts",
    "visible_objects",
    "clip_visible_ids",
]

VISIBLE_MIN_FRACTION = 0.01
"""Least share of a frame's pixels an object must cover in a frame to count as seen in it."""
VISIBLE_MIN_FRAMES = 2
"""Least number of a clip's frames an object must be seen in to count as visible in the clip."""


def instance_pixel_counts(instance: np.ndarray, num_objects: int) -> np.ndarray:
    """Pixels of each object in each frame from an instance map.

    Args:
        instance: ``[F, H, W]`` int object index per pixel (negative = nothing).
        num_objects: ``O``; indices ``>= O`` are ignored.
    Returns:
        ``[F, O]`` int64 pixel counts.
    """
    instance = np.asarray(instance)
    if instance.ndim != 3:
        raise ValueError(f"instance map must be [F, H, W], got shape {instance.shape}")
    counts = np.zeros((instance.shape[0], num_objects), dtype=np.int64)
    for f in range(instance.shape[0]):  # one bincount per frame
        ids = instance[f].reshape(-1)
        ids = ids[(ids >= 0) & (ids < num_objects)]
        counts[f] = np.bincount(ids, minlength=num_objects)[:num_objects]
    return counts


def frame_box_masks(
    depth: Tensor, extrinsics: Tensor, intrinsics: Tensor, world_from_model: Tensor, boxes: Tensor, margin: float = 0.02
) -> Iterator[Tensor]:
    """Per frame, which GT boxes each valid depth pixel lies in: yields ``[H·W, O]`` bool for each of the ``S`` frames
    (every valid pixel lifted to the aligned world and tested against every box grown by ``margin``; one frame at a
    time keeps the ``[H·W, O, 3]`` comparison small). Arguments as in :func:`box_pixel_counts`."""
    boxes = torch.as_tensor(boxes).reshape(-1, 6).double()
    points = depth_to_world_points(depth.double(), extrinsics.double(), intrinsics.double())  # [S, H, W, 3] model frame
    wfm = world_from_model.double()
    world = points.flatten(1, 2) @ wfm[:3, :3].T + wfm[:3, 3]  # [S, HW, 3]
    valid = (depth > 0).flatten(1)  # [S, HW]
    lo = boxes[:, :3] - boxes[:, 3:] / 2 - margin
    hi = boxes[:, :3] + boxes[:, 3:] / 2 + margin
    for s in range(world.shape[0]):
        yield ((world[s, :, None, :] >= lo) & (world[s, :, None, :] <= hi)).all(-1) & valid[s, :, None]


def box_pixel_counts(
    depth: Tensor, extrinsics: Tensor, intrinsics: Tensor, world_from_model: Tensor, boxes: Tensor, margin: float = 0.02
) -> Tensor:
    """Pixels of each object in each frame from GT depth and GT boxes (see the module docstring).

    Args:
        depth: ``[S, H, W]`` metres (0 = invalid); extrinsics ``[S, 3, 4]`` world(model)→camera;
        intrinsics ``[S, 3, 3]``; world_from_model ``[4, 4]`` model frame → aligned world;
        boxes ``[O, 6]`` aligned-world ``[cx, cy, cz, dx, dy, dz]``; margin: metres added on every side.
    Returns:
        ``[S, O]`` int64 pixel counts.
    """
    boxes = torch.as_tensor(boxes).reshape(-1, 6)
    if boxes.shape[0] == 0:
        return torch.zeros(depth.shape[0], 0, dtype=torch.long)
    return torch.stack(
        [inside.sum(0) for inside in frame_box_masks(depth, extrinsics, intrinsics, world_from_model, boxes, margin)]
    )


def visible_objects(
    pixel_counts, image_pixels: int, min_fraction: float = VISIBLE_MIN_FRACTION, min_frames: int = VISIBLE_MIN_FRAMES
) -> np.ndarray:
    """The visibility rule: objects covering ``>= min_fraction`` of ``image_pixels`` in ``>= min_frames`` frames,
    but never in more than half of a short clip's ``F`` frames: ``min(min_frames, ceil(F / 2))`` (a 2-frame clip of a
    sparse scan rarely shows one object twice; the demo's 8-frame clip needs 2).

    Args:
        pixel_counts: ``[F, O]`` pixels per frame and object (the clip's frames only).
        image_pixels: pixels of one frame (``H · W``).
    Returns:
        ``[O]`` bool.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"pixel counts must be [F, O], got shape {counts.shape}")
    if image_pixels < 1 or min_frames < 1 or not 0 <= min_fraction <= 1:
        raise ValueError(
            f"visibility needs image_pixels >= 1, min_frames >= 1 and min_fraction in [0, 1], got {image_pixels}, {min_frames}, {min_fraction}"
        )
    seen = counts >= max(min_fraction * image_pixels, 1e-9)
    return seen.sum(0) >= min(min_frames, -(-counts.shape[0] // 2))


def clip_visible_ids(
    clip: dict,
    object_ids,
    boxes,
    margin: float = 0.02,
    min_fraction: float = VISIBLE_MIN_FRACTION,
    min_frames: int = VISIBLE_MIN_FRAMES,
) -> set[int]:
    """Ids of the objects visible in a preprocessed clip (:func:`vidllm.data.clip.load_clip`: ``depth``,
    ``extrinsics``, ``intrinsics``, ``world_from_model``), by :func:`box_pixel_counts` and :func:`visible_objects`.

    Args:
        object_ids: ``[O]`` ids; boxes: ``[O, 6]`` their aligned-world boxes.
    """
    ids = [int(i) for i in np.asarray(object_ids).reshape(-1)]
    if not ids:
        return set()
    counts = box_pixel_counts(
        clip["depth"], clip["extrinsics"], clip["intrinsics"], clip["world_from_model"], torch.as_tensor(boxes), margin
    )
    h, w = clip["depth"].shape[-2:]
    mask = visible_objects(counts.numpy(), h * w, min_fraction, min_frames)
    return {i for i, keep in zip(ids, mask) if keep}
