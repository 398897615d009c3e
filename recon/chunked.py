"""Chunked reconstruction of videos longer than one forward fits in memory.

The ``S`` frames are split into chunks of at most ``chunk_size`` frames (:func:`chunk_plan`), each run
through the model on its own, so each chunk's geometry is in its own model frame (the camera of its
first frame, its own scale). Two layouts:

* ``consecutive`` — runs of consecutive frames; consecutive chunks share at least ``overlap`` frames
  (:func:`chunk_spans`) and chunk ``k+1`` is aligned to chunk ``k``. Suits trajectories whose far
  ends do not see the same things; alignment errors accumulate along the chain.
* ``anchored`` — ``overlap`` anchor frames spread evenly over the video (frame 0 among them) belong to
  every chunk; the other frames are dealt out to the chunks with a stride (chunk ``g`` holds every
  ``G``-th of them), so every chunk spans the whole video as one uniformly sampled clip does, has frame
  0 as its model frame, and is aligned to the first chunk directly (no chain).

The Sim(3) ``T_{k→r}`` from chunk ``k``'s frame to its reference chunk ``r``'s (``x_r = s·R·x_k + t``,
:mod:`recon.sim3` Eq. 1) is fitted on the frames the two share: both predict a depth map for each,
so every pixel gives a pair of world points (unprojected with each chunk's own depth, extrinsics and
intrinsics, :func:`recon.geometry.depth_to_world_points`), weighted by the geometric mean of the two
confidences (:func:`recon.sim3.estimate_sim3`: confidence-filtered, subsampled, Huber-reweighted
Umeyama). Transforms are chained to the first chunk's frame,

    ``T_{k→0} = T_{r→0} ∘ T_{k→r}``   (consecutive: ``T_{1→0} ∘ T_{2→1} ∘ … ∘ T_{k→k−1}``; Sim(3) Eq. 2)

and every frame is mapped with the transform of the chunk it is taken from: extrinsics
``R_c' = R_c·Rᵀ``, ``t_c' = s·t_c − R_c·Rᵀ·t`` and depth ``s·z`` (Sim(3) Eq. 4), so world points
become ``s·R·x + t``; intrinsics and confidences are unchanged. A frame in several chunks is taken
from the first of them. The first chunk's frame is the first camera, as in one full forward.

The model's relative outputs are chained (``depth``, ``extrinsic``); when the chunks also carry a
metric depth (Vid-LLM, ``metric_depth``), the real-scale alignment (paper §3.2,
:func:`recon.alignment.real_scale_alignment`) is fitted once on the whole chained video, exactly as
the full forward fits it, and gives ``scale``, ``frame_scales``, ``depth_metric`` and
``extrinsic_metric``. With ``chunk_size >= S`` there is one chunk and the output equals the full
forward's.

Memory: one chunk's forward at a time (its attention over ``chunk_size`` frames) plus the per-frame
outputs of the whole video (depth, confidence, metric depth: ``3·S·H·W`` floats).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from recon.alignment import apply_scene_scale, real_scale_alignment
from recon.config import AlignmentConfig
from recon.geometry import depth_to_world_points
from recon.sim3 import Sim3, estimate_sim3

__all__ = [
    "ChunkLayout",
    "LAYOUTS",
    "Chunk",
    "chunk_spans",
    "chunk_plan",
    "check_chunking",
    "default_overlap",
    "chunked_forward",
    "PER_FRAME_KEYS",
]

ChunkLayout = Literal["consecutive", "anchored"]
"""How a long video is cut into chunks (:func:`chunk_plan`)."""
LAYOUTS: tuple[str, ...] = get_args(ChunkLayout)
PER_FRAME_KEYS = ("depth", "depth_conf", "extrinsic", "intrinsic", "metric_depth")
"""Per-frame outputs of one chunk that the merged output keeps (``metric_depth`` when the model has one)."""
_REQUIRED = ("depth", "depth_conf", "extrinsic", "intrinsic")


@dataclass(frozen=True)
class Chunk:
    """One forward of a chunked reconstruction."""

    frames: tuple[int, ...]
    """Increasing frame indices; ``frames[0]`` is the chunk's model frame."""
    reference: int
    """Index of the chunk it is aligned to (−1 for the first chunk)."""


def default_overlap(chunk_size: int) -> int:
    """The overlap used when none is given: a quarter of the chunk, at least one frame."""
    return max(1, chunk_size // 4)


def check_chunking(chunk_size: int, overlap: int, layout: str = "consecutive") -> None:
    """Raise ``ValueError`` unless ``chunk_size >= 2``, ``1 <= overlap < chunk_size`` (integers) and ``layout`` is known."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 2:
        raise ValueError(f"chunk_size must be an integer >= 2, got {chunk_size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap < chunk_size:
        raise ValueError(
            f"overlap must be an integer with 1 <= overlap < chunk_size ({chunk_size}), got {overlap!r}: "
            "chunks are aligned on the frames they share"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"chunk layout must be one of {LAYOUTS}, got {layout!r}")


def chunk_spans(num_frames: int, chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    """The ``consecutive`` layout: ``[(start, end), …]`` half-open frame ranges covering ``range(num_frames)``.

    Chunks start every ``chunk_size − overlap`` frames; the last one is moved back to end at
    ``num_frames`` so that every chunk has ``min(chunk_size, num_frames)`` frames (it then shares more
    than ``overlap`` frames with the one before). ``num_frames <= chunk_size`` gives one chunk.
    """
    check_chunking(chunk_size, overlap)
    if num_frames < 1:
        raise ValueError(f"chunked reconstruction needs at least 1 frame, got {num_frames}")
    if num_frames <= chunk_size:
        return [(0, num_frames)]
    step = chunk_size - overlap
    starts = [0]
    while starts[-1] + chunk_size < num_frames:
        starts.append(min(starts[-1] + step, num_frames - chunk_size))
    return [(a, a + chunk_size) for a in starts]


def chunk_plan(num_frames: int, chunk_size: int, overlap: int, layout: str = "consecutive") -> list[Chunk]:
    """The chunks of ``layout`` (see the module docstring); ``num_frames <= chunk_size`` gives one chunk.

    ``anchored``: anchors ``round(linspace(0, S − 1, overlap))`` (distinct, frame 0 first); the ``n``
    other frames go to ``G = ⌈n / (chunk_size − overlap)⌉`` chunks, chunk ``g`` taking the ``g``-th,
    ``(g+G)``-th, … of them; every chunk = anchors ∪ its share, aligned to chunk 0.
    """
    check_chunking(chunk_size, overlap, layout)
    if layout == "consecutive" or num_frames <= chunk_size:
        spans = chunk_spans(num_frames, chunk_size, overlap)
        return [Chunk(tuple(range(a, b)), k - 1) for k, (a, b) in enumerate(spans)]
    anchors = sorted({round(i * (num_frames - 1) / max(overlap - 1, 1)) for i in range(overlap)})
    rest = sorted(set(range(num_frames)) - set(anchors))
    groups = math.ceil(len(rest) / (chunk_size - overlap))
    return [Chunk(tuple(sorted(anchors + rest[g::groups])), 0 if g else -1) for g in range(groups)]


def _pick(out: Mapping[str, Any], index: int, first_keys: tuple[str, ...] | None) -> dict[str, Tensor]:
    """The per-frame outputs of one chunk (other fields — tokens, streams — are dropped here)."""
    missing = [k for k in _REQUIRED if k not in out]
    if missing:
        raise ValueError(f"chunked_forward: the forward of chunk {index} returned no {missing} (keys: {list(out)})")
    picked = {k: out[k] for k in PER_FRAME_KEYS if k in out and out[k] is not None}
    if first_keys is not None and tuple(picked) != first_keys:
        raise ValueError(f"chunked_forward: chunk {index} returned {list(picked)}, chunk 0 returned {list(first_keys)}")
    return picked


def _shared_sim3(ref: dict[str, Tensor], cur: dict[str, Tensor], item: int, fit_kwargs: dict) -> Sim3:
    """``T_{cur→ref}`` from the shared frames: ``ref`` and ``cur`` hold the same frames, in the same order."""

    def world(chunk: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        depth = chunk["depth"][item].double()
        pts = depth_to_world_points(depth, chunk["extrinsic"][item].double(), chunk["intrinsic"][item].double())
        conf = chunk["depth_conf"][item].double()
        return pts.reshape(-1, 3), torch.where(depth > 0, conf, torch.zeros_like(conf)).reshape(-1)

    dst, w_dst = world(ref)
    src, w_src = world(cur)
    return estimate_sim3(src, dst, (w_src * w_dst).clamp_min(0).sqrt(), **fit_kwargs)


def _map_frames(chunk: dict[str, Tensor], item: int, pos: Tensor, sim: Sim3) -> dict[str, Tensor]:
    """Frames at positions ``pos`` of batch item ``item`` of a chunk in the global frame (Sim(3) Eq. 4)."""
    out = {k: v[item, pos] for k, v in chunk.items()}
    out["depth"] = sim.transform_depth(out["depth"])
    out["extrinsic"] = sim.transform_extrinsics(out["extrinsic"])
    return out


@torch.no_grad()
def chunked_forward(
    forward: Callable[[Tensor], Mapping[str, Any]],
    images: Tensor,
    chunk_size: int,
    overlap: int,
    alignment: AlignmentConfig | None = None,
    layout: str = "consecutive",
    max_points: int = 20_000,
    conf_quantile: float = 0.5,
    iterations: int = 3,
) -> dict[str, Tensor]:
    """Reconstruct ``images`` chunk by chunk and merge the chunks into the first camera's frame.

    Args:
        forward: maps ``[B, S_chunk, 3, H, W]`` images to a mapping with at least ``depth``,
            ``depth_conf`` ``[B, S_chunk, H, W]``, ``extrinsic`` ``[B, S_chunk, 3, 4]`` (world→camera,
            relative scale), ``intrinsic`` ``[B, S_chunk, 3, 3]`` and optionally ``metric_depth``
            ``[B, S_chunk, H, W]`` — e.g. a :class:`recon.model.ReconstructionModel`, or
            a Vid-LLM pipeline's ``forward_geometry`` (:class:`vidllm.api.VidLLMPipeline`).
        images: ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) in [0, 1].
        chunk_size: frames per forward (≥ 2); ``S <= chunk_size`` runs one full forward.
        overlap: frames shared by consecutive chunks, or anchor frames (``1 <= overlap < chunk_size``).
        alignment: the model's real-scale alignment settings (``metric_depth.alignment``); required
            when the forward returns ``metric_depth``.
        layout: ``"consecutive"`` or ``"anchored"`` (:func:`chunk_plan`).
        max_points, conf_quantile, iterations: the Sim(3) fit (:func:`recon.sim3.estimate_sim3`).
    Returns:
        ``depth``, ``depth_conf`` ``[B, S, H, W]``, ``extrinsic`` ``[B, S, 3, 4]``, ``intrinsic``
        ``[B, S, 3, 3]`` (first camera's frame, first chunk's scale), ``chunk_frames`` ``[S]`` int64 (the
        chunk each frame is taken from), ``chunk_sim3`` ``[B, K, 4, 4]`` float64 (chunk → global); when
        the forward returns ``scale`` (Vid-LLM) also ``scale [B]``, ``depth_metric`` and ``extrinsic_metric``
        (metres), and with ``metric_depth`` that and ``frame_scales [B, S]`` (alignment on).
    """
    if images.dim() == 4:
        images = images[None]
    if images.dim() != 5 or images.shape[2] != 3:
        raise ValueError(f"chunked_forward: images must be [B, S, 3, H, W], got {tuple(images.shape)}")
    b, s = images.shape[:2]
    device = images.device
    plan = chunk_plan(s, chunk_size, overlap, layout)
    fit_kwargs = {"max_points": max_points, "conf_quantile": conf_quantile, "iterations": iterations}
    # the frames each chunk must keep (local outputs) for the chunks aligned to it
    shared = [sorted(set(c.frames) & set(plan[c.reference].frames)) if c.reference >= 0 else [] for c in plan]
    keep: dict[int, set[int]] = {}
    last_use: dict[int, int] = {}  # reference chunk → the last chunk aligned to it
    for k, c in enumerate(plan):
        if c.reference >= 0:
            keep.setdefault(c.reference, set()).update(shared[k])
            last_use[c.reference] = k
    to_global: list[list[Sim3]] = []
    kept: dict[int, tuple[list[int], dict[str, Tensor]]] = {}
    source = torch.full((s,), -1, dtype=torch.int64)
    pieces: list[tuple[Tensor, list[dict[str, Tensor]]]] = []  # (frame indices, per-item mapped outputs)
    keys: tuple[str, ...] | None = None
    scaled_output = False
    for k, c in enumerate(plan):
        frames = torch.tensor(c.frames)
        out = forward(images[:, c.frames[0] : c.frames[-1] + 1] if _is_run(c.frames) else images[:, frames.to(device)])
        scaled_output = "scale" in out  # a Vid-LLM forward (metric keys), with or without a metric depth model
        chunk = _pick(out, k, keys)
        del out
        keys = tuple(chunk)
        if c.reference >= 0:
            ref_frames, ref = kept[c.reference]
            ref_sel = {key: v[:, [ref_frames.index(f) for f in shared[k]]] for key, v in ref.items()}
            cur_sel = {key: v[:, [c.frames.index(f) for f in shared[k]]] for key, v in chunk.items()}
            sims = [to_global[c.reference][i].compose(_shared_sim3(ref_sel, cur_sel, i, fit_kwargs)) for i in range(b)]
            if last_use[c.reference] == k:
                del kept[c.reference]
        else:
            sims = [Sim3.identity(chunk["depth"].device) for _ in range(b)]
        to_global.append(sims)
        new = (source[frames] < 0).nonzero()[:, 0]
        source[frames[new]] = k
        pos = new.to(device)
        if k == 0:  # the first chunk is the global frame: kept as the forward returned it
            mapped = [{key: v[i, pos] for key, v in chunk.items()} for i in range(b)]
        else:
            mapped = [_map_frames(chunk, i, pos, sims[i]) for i in range(b)]
        pieces.append((frames[new], mapped))
        if k in keep:
            local = sorted(keep[k])
            kept[k] = (local, {key: v[:, [c.frames.index(f) for f in local]] for key, v in chunk.items()})
        del chunk
    order = torch.cat([f for f, _ in pieces]).argsort().to(device)
    merged = {key: torch.stack([torch.cat([m[i][key] for _, m in pieces])[order] for i in range(b)]) for key in keys}
    merged["chunk_frames"] = source
    merged["chunk_sim3"] = torch.stack([torch.stack([sims[i].matrix() for sims in to_global]) for i in range(b)])
    if "metric_depth" in merged or scaled_output:
        merged.update(_metric(merged, alignment))
    return merged


def _is_run(frames: tuple[int, ...]) -> bool:
    """Consecutive frame indices (the chunk's images are then a view, not a copy)."""
    return frames[-1] - frames[0] + 1 == len(frames)


def _metric(merged: dict[str, Tensor], alignment: AlignmentConfig | None) -> dict[str, Tensor]:
    """Real-scale alignment of the chained video, as :meth:`vidllm.model.VidLLM.reconstruct_streams` does
    (scale 1 without a metric depth or with the alignment off)."""
    if "metric_depth" in merged and alignment is None:
        raise ValueError(
            "chunked_forward: the forward returns metric_depth, so pass alignment= the model's "
            "metric_depth.alignment settings (the scale is fitted once on the chained video)"
        )
    depth = merged["depth"]
    out: dict[str, Tensor] = {}
    if "metric_depth" in merged and alignment.enabled:
        fit = real_scale_alignment(
            depth,
            merged["metric_depth"],
            merged["depth_conf"],
            None,
            alignment.num_frames,
            alignment.seed,
            alignment.min_valid_pixels,
        )
        scale, out["frame_scales"] = fit.scale, fit.frame_scales
    else:
        scale = torch.ones(depth.shape[0], device=depth.device, dtype=depth.dtype)
    scaled = apply_scene_scale(scale, depth=depth, extrinsics=merged["extrinsic"])
    out.update(scale=scale, depth_metric=scaled["depth"], extrinsic_metric=scaled["extrinsics"])
    return out
