"""Frame samplers: which frames of a scene form a clip of ``S`` frames.

Only frames with a finite pose are candidates (frames with ``-inf``/NaN poses are skipped and
counted in a warning). All samplers return indices into the scene's frame list in increasing
(temporal) order; if a scene has fewer valid frames than ``S``, frames repeat (uniform spacing).

* ``uniform`` (default): ``S`` frames evenly spread over the valid frames.
* ``stride``: every ``stride``-th valid frame from ``start``; the stride shrinks when the scene is
  too short to hold ``S`` frames at that stride.
* ``segment``: the valid frames split into ``S`` equal segments, one frame from each — a random
  frame of the segment in training (every draw of a sample gives another clip of the same video),
  the segment's middle frame when sampling is deterministic (evaluation).
* ``coverage``: greedy maximum coverage — repeatedly take the frame whose depth (unprojected into
  the aligned world, on a pixel grid) adds the most not-yet-seen voxels; ties and zero gains fall
  back to uniform spacing.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = [
    "valid_frame_indices",
    "sample_uniform",
    "sample_segments",
    "sample_stride",
    "sample_coverage",
    "frame_voxel_keys",
]

log = logging.getLogger(__name__)


def valid_frame_indices(valid: np.ndarray, scene_id: str = "") -> np.ndarray:
    """Indices ``[F_valid]`` of frames with finite poses; logs a warning with the skipped count."""
    valid = np.asarray(valid, dtype=bool)
    skipped = int((~valid).sum())
    if skipped:
        log.warning(
            "%s: skipped %d of %d frames with invalid (-inf/NaN) poses", scene_id or "scene", skipped, valid.size
        )
    if not valid.any():
        raise ValueError(f"{scene_id or 'scene'}: no frame has a valid pose")
    return np.nonzero(valid)[0]


def sample_uniform(candidates: np.ndarray, num: int) -> np.ndarray:
    """``num`` candidates evenly spaced from the first to the last (``[num]``)."""
    pos = np.floor(np.linspace(0, len(candidates) - 1, num) + 0.5).astype(np.int64)  # round half up
    return np.asarray(candidates)[pos]


def sample_segments(candidates: np.ndarray, num: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """One candidate from each of ``num`` equal segments of the candidates (``[num]``, increasing).

    Segment ``k`` covers positions ``[k·n/num, (k+1)·n/num)`` of the ``n`` candidates; with ``rng`` a
    uniformly random position of each segment, else its middle one. Segments shorter than one
    frame (``n < num``) repeat frames, as :func:`sample_uniform`.
    """
    n = len(candidates)
    lo = np.arange(num) * n / num
    width = n / num
    offset = rng.random(num) if rng is not None else np.full(num, 0.5)
    pos = np.minimum(np.floor(lo + offset * width).astype(np.int64), n - 1)
    return np.asarray(candidates)[pos]


def sample_stride(candidates: np.ndarray, num: int, stride: int, start: int = 0) -> np.ndarray:
    """Every ``stride``-th candidate from ``start`` (``[num]``); stride and start shrink to fit."""
    if stride < 1:
        raise ValueError(f"data.frame_stride must be >= 1, got {stride}")
    n = len(candidates)
    if num > 1:
        stride = max(1, min(stride, (n - 1) // (num - 1)))
    start = int(np.clip(start, 0, max(0, n - 1 - stride * (num - 1))))
    pos = np.minimum(start + stride * np.arange(num), n - 1)
    return np.asarray(candidates)[pos]


def frame_voxel_keys(
    depth: np.ndarray, intrinsics: np.ndarray, c2w: np.ndarray, voxel: float, step: int = 4
) -> np.ndarray:
    """Unique voxel keys ``[K]`` (int64) of the points of one depth map (every ``step``-th pixel).

    Args:
        depth: ``[H, W]`` metres (0 invalid); intrinsics ``[3, 3]`` of the depth camera; c2w ``[4, 4]``.
    """
    d = depth[::step, ::step]
    v, u = np.meshgrid(np.arange(0, depth.shape[0], step), np.arange(0, depth.shape[1], step), indexing="ij")
    ok = d > 0
    z = d[ok]
    cam = np.stack(
        [(u[ok] - intrinsics[0, 2]) / intrinsics[0, 0] * z, (v[ok] - intrinsics[1, 2]) / intrinsics[1, 1] * z, z], -1
    )
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    cells = np.floor(world / voxel).astype(np.int64) + (1 << 20)
    keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
    return np.unique(keys)


def sample_coverage(candidates: np.ndarray, num: int, voxel_keys: list[np.ndarray]) -> np.ndarray:
    """Greedy maximum voxel coverage over ``candidates`` (``voxel_keys[i]`` = keys of candidate i)."""
    if len(voxel_keys) != len(candidates):
        raise ValueError(f"sample_coverage: {len(voxel_keys)} voxel sets for {len(candidates)} candidates")
    all_keys, inverse = np.unique(
        np.concatenate(voxel_keys) if voxel_keys else np.zeros(0, np.int64), return_inverse=True
    )
    seen_by = np.zeros((len(candidates), len(all_keys)), dtype=bool)
    rows = np.repeat(np.arange(len(candidates)), [len(k) for k in voxel_keys])
    seen_by[rows, inverse] = True
    covered = np.zeros(len(all_keys), dtype=bool)
    chosen: list[int] = []
    for _ in range(min(num, len(candidates))):  # S greedy steps, each vectorised over candidates
        gains = (seen_by & ~covered).sum(1)
        gains[chosen] = -1
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append(best)
        covered |= seen_by[best]
    if len(chosen) < num:  # fill with evenly spaced frames not yet chosen (or repeats when too few)
        rest = np.setdiff1d(np.arange(len(candidates)), chosen)
        pool = rest if len(rest) else np.arange(len(candidates))
        chosen += sample_uniform(pool, num - len(chosen)).tolist()
    return np.asarray(candidates)[np.sort(np.asarray(chosen, dtype=np.int64))]
