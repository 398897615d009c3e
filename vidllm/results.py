"""What the Python API returns: :class:`Reconstruction` (a metric point cloud with depth and cameras),
:class:`Answer` and :class:`Grounding`, and :func:`reconstruction_from_outputs`, which turns the model's
outputs into a :class:`Reconstruction`.

Every array is in metres in the **model frame** (the first frame's camera: x right, y down, z forward)
after real-scale alignment. Nothing here runs the model or reads files, so the module imports no data
readers and no video decoders.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from recon.geometry import depth_to_world_points
from vidllm.errors import DataError
from vidllm.modeling_outputs import VidLLMOutput

if TYPE_CHECKING:
    from vidllm.video import Frames

__all__ = ["Reconstruction", "Answer", "Grounding", "reconstruction_from_outputs"]


@dataclass
class Reconstruction:
    """A metric reconstruction of one clip (model frame, metres)."""

    points: np.ndarray
    """``[N, 3]`` float32 world points of every pixel with valid depth."""
    colors: np.ndarray
    """``[N, 3]`` float32 RGB in [0, 1] of each point."""
    confidence: np.ndarray
    """``[N]`` depth confidence of each point (higher is better; 1 + exp(x) for the DPT head)."""
    depth: np.ndarray
    """``[S, H, W]`` metric depth."""
    extrinsics: np.ndarray
    """``[S, 3, 4]`` world→camera (model frame = camera 0), translation in metres."""
    intrinsics: np.ndarray
    """``[S, 3, 3]`` pixel intrinsics of the preprocessed frames."""
    scale: float
    """Real-scale factor applied to the relative reconstruction (1 without a metric model)."""
    depth_confidence: np.ndarray | None = None
    """``[S, H, W]`` per-pixel confidence (``confidence`` is this at the kept pixels)."""
    images: np.ndarray | None = None
    """``[S, H, W, 3]`` uint8 preprocessed frames."""
    frame_indices: list[int] = field(default_factory=list)
    """Index of each frame in the source video / folder."""
    frame_names: list[str] = field(default_factory=list)
    """Source name of each frame."""

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def camera_centers(self) -> np.ndarray:
        """``[S, 3]`` camera centres in the model frame."""
        rot, trans = self.extrinsics[:, :, :3], self.extrinsics[:, :, 3]
        return -np.einsum("sji,sj->si", rot, trans)

    def filter_confidence(self, quantile: float) -> Reconstruction:
        """Keep the points whose confidence is at least the ``quantile`` (0–1) of all confidences."""
        if not 0.0 <= quantile < 1.0:
            raise ValueError(f"confidence quantile must be in [0, 1), got {quantile}")
        if quantile == 0.0 or len(self) == 0:
            return self
        keep = self.confidence >= np.quantile(self.confidence, quantile)
        return self._subset(keep)

    def voxel_down_sample(self, voxel_size: float) -> Reconstruction:
        """One point per ``voxel_size`` (metres) voxel: mean position and colour, max confidence."""
        if voxel_size <= 0:
            raise ValueError(f"voxel size must be > 0, got {voxel_size}")
        if len(self) == 0:
            return self
        keys = np.floor(self.points / voxel_size).astype(np.int64)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        n = counts.shape[0]
        pts = np.zeros((n, 3)), np.zeros((n, 3))
        np.add.at(pts[0], inverse, self.points)
        np.add.at(pts[1], inverse, self.colors)
        conf = np.full(n, -np.inf)
        np.maximum.at(conf, inverse, self.confidence)
        return self._replace(
            points=(pts[0] / counts[:, None]).astype(np.float32),
            colors=(pts[1] / counts[:, None]).astype(np.float32),
            confidence=conf.astype(np.float32),
        )

    def _subset(self, keep: np.ndarray) -> Reconstruction:
        return self._replace(points=self.points[keep], colors=self.colors[keep], confidence=self.confidence[keep])

    def _replace(self, **kw) -> Reconstruction:
        return replace(self, **kw)

    def to_open3d(self):
        """An ``open3d.geometry.PointCloud`` with the points and colours."""
        import open3d as o3d

        pcd = o3d.geometry.PointCloud()
        pcd.points = o3d.utility.Vector3dVector(self.points.astype(np.float64))
        pcd.colors = o3d.utility.Vector3dVector(np.clip(self.colors, 0, 1).astype(np.float64))
        return pcd

    def save(self, path: str | Path) -> Path:
        """Write a binary coloured PLY (atomically: temporary file, then rename)."""
        from recon.reconstruct import write_ply

        if len(self) == 0:
            raise DataError(f"{path}: the reconstruction has no points to write")
        return write_ply(path, self.points, self.colors)

    def cameras_dict(self) -> dict:
        """Poses and intrinsics as JSON-ready lists (``cameras.json``)."""
        return {
            "frame": "model (camera of the first frame; x right, y down, z forward; metres)",
            "scale": float(self.scale),
            "frames": [
                {
                    "index": int(self.frame_indices[i]) if i < len(self.frame_indices) else i,
                    "name": self.frame_names[i] if i < len(self.frame_names) else "",
                    "extrinsic_w2c": self.extrinsics[i].tolist(),
                    "intrinsic": self.intrinsics[i].tolist(),
                    "center": self.camera_centers[i].tolist(),
                }
                for i in range(self.extrinsics.shape[0])
            ],
        }


@dataclass
class Answer:
    """An answer to a question about a video."""

    text: str
    """The generated answer."""
    boxes: np.ndarray
    """``[K, 6]`` boxes (centre, size; model frame, metres) of the objects the question refers to:
    the grounding head's slots above ``vl.grounding.score_threshold`` (at least one)."""
    scores: np.ndarray
    """``[K]`` objectness probability of each box."""
    point_cloud: Reconstruction
    """The reconstruction the answer was computed from."""


@dataclass
class Grounding:
    """The object(s) a description refers to."""

    box: np.ndarray
    """``[6]`` the prediction: the chosen proposal when proposals were given, else the best regressed box."""
    boxes: np.ndarray
    """``[K, 6]`` all selected regressed boxes (multi-target prediction)."""
    scores: np.ndarray
    """``[K]`` objectness of ``boxes``."""
    proposal_index: int
    """Index of the chosen proposal (−1 without proposals or when none was chosen)."""
    point_cloud: Reconstruction
    """The reconstruction the boxes were predicted on."""


def reconstruction_from_outputs(
    out: VidLLMOutput | dict, images: Tensor, index: int = 0, frames: Frames | None = None
) -> Reconstruction:
    """Model outputs (a :class:`~vidllm.modeling_outputs.VidLLMOutput`, or a plain VGGT prediction dict) of batch item ``index`` → :class:`Reconstruction`.

    Uses the metric keys (``depth_metric``, ``extrinsic_metric``, ``scale``) when present (Vid-LLM),
    else the relative ones (a plain VGGT model). ``images`` is ``[B, S, 3, H, W]`` or ``[S, 3, H, W]``.
    """
    if images.dim() == 4:
        images = images[None]
    depth = out.get("depth_metric", out["depth"])[index].float()
    extrinsic = out.get("extrinsic_metric", out["extrinsic"])[index].float()
    intrinsic = out["intrinsic"][index].float()
    conf = out["depth_conf"][index].float() if out.get("depth_conf") is not None else torch.ones_like(depth)
    scale = float(out["scale"][index]) if "scale" in out else 1.0
    points = depth_to_world_points(depth, extrinsic, intrinsic)
    valid = (depth > 0) & torch.isfinite(depth) & torch.isfinite(points).all(-1)
    rgb = images[index].permute(0, 2, 3, 1).float()
    return Reconstruction(
        points=points[valid].cpu().numpy().astype(np.float32),
        colors=rgb[valid].cpu().numpy().astype(np.float32),
        confidence=conf[valid].cpu().numpy().astype(np.float32),
        depth=depth.cpu().numpy(),
        extrinsics=extrinsic.cpu().numpy(),
        intrinsics=intrinsic.cpu().numpy(),
        scale=scale,
        depth_confidence=conf.cpu().numpy(),
        images=(rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy(),
        frame_indices=list(frames.indices) if frames is not None else list(range(depth.shape[0])),
        frame_names=list(frames.names) if frames is not None else [],
    )
