"""One clip per scene: the frames every query about the scene is answered from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from vidllm.config import DataConfig
from vidllm.data.clip import load_clip
from vidllm.data.dataset import VidLLMDataset
from vidllm.data.visibility import clip_visible_ids
from vidllm.errors import DataError

__all__ = ["SceneClips", "eval_data_config", "load_proposals"]


def eval_data_config(model_data: DataConfig, data_root: str | Path, num_frames: int | None = None) -> DataConfig:
    """The model's data settings (frames, size, sampling) pointed at ``data_root`` (annotation dirs reset to its default layout)."""
    root = Path(data_root)
    if not (root / "scans").is_dir():
        raise DataError(
            f"--data {root}: no 'scans/' folder (expected <root>/scans/<scene_id>/ and <root>/annotations/)"
        )
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
        self._cached: tuple[tuple[str, bool], dict] | None = None
        self._visible: dict[str, set[int]] = {}

    def records(self, task: str) -> list:
        """The records of ``task`` in dataset order."""
        return [rec for t, rec in self.dataset.samples if t == task]

    def scene(self, scene_id: str):
        return self.dataset.scene(scene_id)

    def clip(self, scene_id: str, reverse: bool = False) -> dict:
        """The preprocessed clip of ``scene_id`` (see :func:`vidllm.data.clip.load_clip`); ``reverse``: the same
        frames played backwards (the model frame is then the last frame's camera)."""
        key = (scene_id, bool(reverse))
        if self._cached is None or self._cached[0] != key:
            scene = self.scene(scene_id)
            indices = self.dataset.frame_indices(scene, 0)
            item = load_clip(
                scene, indices[::-1].copy() if reverse else indices, self.cfg.image_size, self.cfg.resize_side
            )
            self._cached = (key, item)
        return self._cached[1]

    def visible_ids(self, scene_id: str) -> set[int]:
        """Ids of the GT objects visible in the (forward) clip of ``scene_id``
        (:func:`vidllm.data.visibility.clip_visible_ids`, from the clip's GT depth and the GT boxes; cached)."""
        if scene_id not in self._visible:
            objects = self.scene(scene_id).objects
            if objects is None or len(objects.object_ids) == 0:
                self._visible[scene_id] = set()
            else:
                self._visible[scene_id] = clip_visible_ids(self.clip(scene_id), objects.object_ids, objects.boxes)
        return self._visible[scene_id]


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
        raise DataError(
            f"{path}: proposals must be a finite [Q, 6] array (cx, cy, cz, dx, dy, dz), got shape {arr.shape}"
        )
    return torch.as_tensor(arr[:, :6], dtype=torch.float32)
