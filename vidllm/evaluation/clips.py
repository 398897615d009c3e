"""One clip per scene: the frames every query about the scene is answered from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from vidllm.config import DataConfig
from vidllm.data.clip import load_clip
from vidllm.data.dataset import VidLLMDataset
from vidllm.errors import DataError

__all__ = ["SceneClips", "eval_data_config", "load_proposals"]


def eval_data_config(model_data: DataConfig, data_root: str | Path, num_frames: int | None = None) -> DataConfig:
    """The model's data settings (frames, size, sampling) pointed at ``data_root`` (annotation dirs reset to its default layout)."""
    root = Path(data_root)
    if not (root / "scans").is_dir():
        raise DataError(f"--data {root}: no 'scans/' folder (expected <root>/scans/<scene_id>/ and <root>/annotations/)")
    return dataclasses.replace(
        model_data,
        root=str(root),
        scanrefer_dir=None,
        scanqa_dir=None,
        sqa3d_dir=None,
        multi3drefer_dir=None,
        split_dir=None,
        num_frames=num_frames or model_data.num_frames,
        num_workers=0,
    )


class SceneClips:
    """The records of one split and a deterministic clip per scene (cached, one at a time).

    Args:
        cfg: data config (see :func:`eval_data_config`); split: e.g. 'val'; tasks: the record
            kinds to read ('grounding', 'qa', 'sqa', 'caption', 'recon').
    """

    def __init__(self, cfg: DataConfig, split: str, tasks: list[str]) -> None:
        self.cfg = cfg
        self.dataset = VidLLMDataset(cfg, split, tasks=tasks, deterministic=True)
        self._cached: tuple[str, dict] | None = None

    def records(self, task: str) -> list:
        """The records of ``task`` in dataset order."""
        return [rec for t, rec in self.dataset.samples if t == task]

    def scene(self, scene_id: str):
        return self.dataset.scene(scene_id)

    def clip(self, scene_id: str) -> dict:
        """The preprocessed clip of ``scene_id`` (see :func:`vidllm.data.clip.load_clip`), batch of 1 added."""
        if self._cached is None or self._cached[0] != scene_id:
            scene = self.scene(scene_id)
            item = load_clip(scene, self.dataset.frame_indices(scene, 0), self.cfg.image_size, self.cfg.resize_side)
            self._cached = (scene_id, item)
        return self._cached[1]


def load_proposals(source: str, scene, proposal_dir: Path | None = None) -> torch.Tensor | None:
    """Proposals ``[Q, 6]`` (aligned world, centre + size) of a scene.

    ``source``: 'gt' (the scene's GT object boxes), 'none' (None: box regression), or a directory
    with one ``<scene_id>.npy`` per scene holding ``[Q, 6]`` AABBs (``[Q, ≥6]`` accepted: extra
    columns such as a score are ignored) — e.g. Mask3D instances converted to boxes.
    """
    if source == "none":
        return None
    if source == "gt":
        return torch.as_tensor(scene.objects.boxes, dtype=torch.float32).reshape(-1, 6)
    path = Path(proposal_dir or source) / f"{scene.scene_id}.npy"
    if not path.is_file():
        raise DataError(f"--proposals {source}: no proposal file {path} for scene {scene.scene_id}")
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 2 or arr.shape[1] < 6 or not np.isfinite(arr[:, :6]).all():
        raise DataError(f"{path}: proposals must be a finite [Q, 6] array (cx, cy, cz, dx, dy, dz), got shape {arr.shape}")
    return torch.as_tensor(arr[:, :6], dtype=torch.float32)
