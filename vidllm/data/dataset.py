"""The map-style dataset of clips with task records (recon, qa, sqa, grounding, caption).

One item = one task sample: a clip of its scene (see :mod:`vidllm.data.clip`) plus the text and
target fields of the task. Scenes are loaded lazily and cached per process, so the dataset is
safe to use from DataLoader workers (it holds only paths and parsed records when pickled).

Sources of each task for split ``<split>`` (directories from :class:`~vidllm.config.DataConfig`):

* recon — one sample per scene of the split;
* qa — ``ScanQA_v1.0_<split>.json``; sqa — ``v1_balanced_{questions,sqa_annotations}_<split>_scannetv2.json``;
* grounding — ``ScanRefer_filtered_<split>.json`` and/or ``multi3drefer_<split>.json`` (data.grounding_source;
  Multi3DRefer targets may be empty or several, ``eval_type`` is its zt/st/mt type);
* caption — Scan2Cap: one sample per ScanRefer-annotated object, all its descriptions as references.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from recon.geometry import closed_form_inverse_se3, transform_boxes
from vidllm.config import DataConfig
from vidllm.data.annotations import (
    Multi3DReferRecord,
    read_multi3drefer,
    read_scanqa,
    read_scanrefer,
    read_sqa3d,
    scan2cap_references,
)
from vidllm.data.clip import load_clip
from vidllm.data.labels import read_label_map
from vidllm.data.resumable import split_draw_key
from vidllm.data.sampling import (
    frame_voxel_keys,
    sample_coverage,
    sample_segments,
    sample_stride,
    sample_uniform,
    valid_frame_indices,
)
from vidllm.data.scannet import ScanNetScene, load_scannet_scene
from vidllm.data.scannet_io import read_depth, read_split
from vidllm.errors import DataError

__all__ = ["VidLLMDataset", "split_scene_ids"]

log = logging.getLogger(__name__)


def split_scene_ids(cfg: DataConfig, split: str) -> list[str]:
    """Scene ids of ``split`` from ``<split_dir>/<split>.txt`` or ``<split_dir>/scannetv2_<split>.txt``."""
    split_dir = Path(cfg.split_dir) if cfg.split_dir else Path(cfg.root) / "splits"
    for name in (f"{split}.txt", f"scannetv2_{split}.txt"):
        if (split_dir / name).is_file():
            return read_split(split_dir / name)
    raise DataError(f"{split_dir}: no split list '{split}.txt' or 'scannetv2_{split}.txt' (data.split_dir)")


class VidLLMDataset(Dataset):
    """Task samples over the scenes of one split.

    Args:
        cfg: the data config (root, annotation dirs, sampling and preprocessing).
        split: 'train' or 'val' (any name with a split list and annotation files).
        tasks: the tasks to include (default ``cfg.tasks``).
        deterministic: sample clips without randomness (validation); else the random choices of a
            sample (the stride sampler's start, the segment sampler's frames, the answer with
            ``answer_sampling: random``) are drawn from ``(cfg.seed, index, draw)``, where the
            training sampler passes ``draw`` in the key (:func:`vidllm.data.resumable.split_draw_key`;
            a plain index is draw 0), so repeated draws of a sample differ but every key gives one item.
    """

    def __init__(self, cfg: DataConfig, split: str, tasks: list[str] | None = None, deterministic: bool = True):
        self.cfg, self.split, self.deterministic = cfg, split, deterministic
        self.tasks = list(tasks if tasks is not None else cfg.tasks)
        self.root = Path(cfg.root)
        self.scene_ids = split_scene_ids(cfg, split)
        missing = [s for s in self.scene_ids if not (self.root / "scans" / s).is_dir()]
        if missing:
            raise DataError(
                f"{self.root / 'scans'}: {len(missing)} scene folder(s) of split '{split}' not found, e.g. {missing[:3]}"
            )
        self.label_map_path = cfg.label_map
        known = set(self.scene_ids)
        ann = self.root / "annotations"
        self.samples: list[tuple[str, object]] = []
        if "recon" in self.tasks:
            self.samples += [("recon", s) for s in self.scene_ids]
        if "qa" in self.tasks:
            path = Path(cfg.scanqa_dir or ann) / f"ScanQA_v1.0_{split}.json"
            self.samples += [("qa", r) for r in read_scanqa(path, scene_ids=known)]
        if "sqa" in self.tasks:
            base = Path(cfg.sqa3d_dir or ann)
            recs = read_sqa3d(
                base / f"v1_balanced_questions_{split}_scannetv2.json",
                base / f"v1_balanced_sqa_annotations_{split}_scannetv2.json",
                scene_ids=known,
            )
            self.samples += [("sqa", r) for r in recs]
        if "caption" in self.tasks or ("grounding" in self.tasks and cfg.grounding_source != "multi3drefer"):
            path = Path(cfg.scanrefer_dir or ann) / f"ScanRefer_filtered_{split}.json"
            refer = read_scanrefer(path, label_map=read_label_map(cfg.label_map), scene_ids=known)
            if "grounding" in self.tasks and cfg.grounding_source in ("scanrefer", "both"):
                self.samples += [("grounding", r) for r in refer]
            if "caption" in self.tasks:
                self.samples += [("caption", (key, refs)) for key, refs in scan2cap_references(refer).items()]
        if "grounding" in self.tasks and cfg.grounding_source in ("multi3drefer", "both"):
            path = Path(cfg.multi3drefer_dir or ann) / f"multi3drefer_{split}.json"
            self.samples += [("grounding", r) for r in read_multi3drefer(path, scene_ids=known)]
        self._scenes: dict[str, ScanNetScene] = {}
        self._coverage: dict[str, np.ndarray] = {}
        self._candidates: dict[str, np.ndarray] = {}
        self._scene_records: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return len(self.samples)

    def task_counts(self) -> dict[str, int]:
        counts = {t: 0 for t in self.tasks}
        for task, _ in self.samples:
            counts[task] += 1
        return counts

    def __getstate__(self):  # workers start with empty caches
        state = self.__dict__.copy()
        state["_scenes"], state["_coverage"], state["_candidates"] = {}, {}, {}
        return state

    def scene(self, scene_id: str) -> ScanNetScene:
        """The loaded scene (cached per process)."""
        if scene_id not in self._scenes:
            self._scenes[scene_id] = load_scannet_scene(
                self.root / "scans" / scene_id, label_map=read_label_map(self.label_map_path)
            )
        return self._scenes[scene_id]

    # ------------------------------------------------------------------ sampling
    def sample_rng(self, index: int, draw: int = 0, stream: int = 0) -> np.random.Generator | None:
        """The generator of sample ``index`` at ``draw`` (None when sampling is deterministic);
        ``stream`` 0 = frames, 1 = the answer, 2 = the play direction (independent seeds)."""
        if self.deterministic:
            return None
        # (seed, index) alone for a plain index's frames: the stride sampler's start of earlier versions
        return np.random.default_rng(
            [self.cfg.seed, index] if draw == stream == 0 else [self.cfg.seed, index, draw, stream]
        )

    def frame_indices(self, scene: ScanNetScene, index: int, draw: int = 0) -> np.ndarray:
        """Indices into ``scene.frame_ids`` of the clip of sample ``index`` at ``draw`` (``[S]``)."""
        cfg = self.cfg
        if scene.scene_id not in self._candidates:  # the skipped-frame warning is logged once per scene
            self._candidates[scene.scene_id] = valid_frame_indices(scene.valid, scene.scene_id)
        candidates = self._candidates[scene.scene_id]
        if cfg.frame_sampling == "uniform":
            return sample_uniform(candidates, cfg.num_frames)
        if cfg.frame_sampling == "segment":
            return sample_segments(candidates, cfg.num_frames, self.sample_rng(index, draw))
        if cfg.frame_sampling == "stride":
            rng = self.sample_rng(index, draw)
            start = 0 if rng is None else int(rng.integers(0, max(1, len(candidates))))
            return sample_stride(candidates, cfg.num_frames, cfg.frame_stride, start)
        if scene.scene_id not in self._coverage:
            pool = sample_uniform(candidates, min(cfg.coverage_candidates, len(candidates)))
            pool = np.unique(pool)
            keys = [
                frame_voxel_keys(
                    read_depth(scene.depth_path(scene.frame_ids[i])),
                    scene.intrinsic_depth,
                    scene.aligned_c2w[i],
                    cfg.coverage_voxel_size,
                )
                for i in pool  # once per scene, cached
            ]
            self._coverage[scene.scene_id] = sample_coverage(pool, cfg.num_frames, keys)
        return self._coverage[scene.scene_id]

    def reversed_draw(self, index: int, draw: int = 0) -> bool:
        """Whether the clip of sample ``index`` at ``draw`` plays backwards: with ``data.reverse_prob`` in
        training draws (from ``(seed, index, draw)``, stream 2), never when sampling is deterministic."""
        if self.deterministic or self.cfg.reverse_prob <= 0:
            return False
        return bool(self.sample_rng(index, draw, stream=2).random() < self.cfg.reverse_prob)

    def clip_indices(self, scene: ScanNetScene, index: int, draw: int = 0) -> np.ndarray:
        """The frame indices the item of ``index`` at ``draw`` is loaded from (``[S]``): :meth:`frame_indices`,
        in reverse order when :meth:`reversed_draw` (``load_clip`` then makes the last frame the model frame)."""
        indices = self.frame_indices(scene, index, draw)
        return indices[::-1].copy() if self.reversed_draw(index, draw) else indices

    def _training_answer(self, answers: list[str], task: str, index: int, draw: int) -> str:
        """The LM target: the first reference, or with ``answer_sampling: random`` (QA tasks, training)
        one drawn from ``(seed, index, draw)``."""
        if not answers:
            return ""
        rng = (
            self.sample_rng(index, draw, stream=1)
            if task in ("qa", "sqa") and self.cfg.answer_sampling == "random"
            else None
        )
        if rng is None or len(answers) == 1:
            return answers[0]
        return answers[int(rng.integers(len(answers)))]

    # ------------------------------------------------------------------ items
    def __getitem__(self, key: int) -> dict:
        """Item of sample ``index`` at ``draw`` for ``key`` = :func:`vidllm.data.resumable.draw_key` (or a plain index)."""
        index, draw = split_draw_key(key, len(self.samples))
        task, rec = self.samples[index]
        scene = self.scene(self._scene_of(task, rec))
        item = load_clip(scene, self.clip_indices(scene, index, draw), self.cfg.image_size, self.cfg.resize_side)
        item.update(self._record_fields(index, draw, scene, item["world_from_model"]))
        if self.cfg.questions_per_clip > 1 and not self.deterministic and task != "recon":
            item["extra_texts"] = [
                self._record_fields(other, draw, scene, item["world_from_model"])
                for other in self.same_scene_records(index, draw)
            ]
        return item

    # ------------------------------------------------------------------ several questions per clip
    def same_scene_records(self, index: int, draw: int = 0) -> list[int]:
        """Up to ``data.questions_per_clip − 1`` other VL samples (not recon) of sample ``index``'s scene,
        drawn without replacement from ``(seed, index, draw)`` (a function of the sampler's key, so resuming is exact)."""
        if not self._scene_records:
            for i, (task, rec) in enumerate(self.samples):
                if task != "recon":
                    self._scene_records.setdefault(self._scene_of(task, rec), []).append(i)
        task, rec = self.samples[index]
        others = [i for i in self._scene_records.get(self._scene_of(task, rec), []) if i != index]
        k = min(self.cfg.questions_per_clip - 1, len(others))
        if k <= 0:
            return []
        rng = np.random.default_rng([self.cfg.seed, index, draw, 2])
        return [others[j] for j in rng.choice(len(others), size=k, replace=False)]

    @staticmethod
    def _scene_of(task: str, rec) -> str:
        return rec if task == "recon" else rec[0][0] if task == "caption" else rec.scene_id

    def _record_fields(self, index: int, draw: int, scene: ScanNetScene, world_from_model: torch.Tensor) -> dict:
        """Text and target fields of sample ``index`` (the keys of :meth:`__getitem__` besides the clip)."""
        task, rec = self.samples[index]
        scene_id = scene.scene_id
        text = {
            "task": task,
            "question": "",
            "situation": "",
            "description": "",
            "answers": [],
            "record_id": "",
            "eval_type": "",
        }
        target_ids: list[int] = []
        if task == "qa":
            text.update(question=rec.question, answers=list(rec.answers), record_id=str(rec.question_id))
            target_ids = list(rec.object_ids)
        elif task == "sqa":
            text.update(
                situation=rec.situation,
                question=rec.question,
                answers=list(rec.answers),
                record_id=str(rec.question_id),
            )
        elif task == "grounding" and isinstance(rec, Multi3DReferRecord):
            text.update(description=rec.description, record_id=f"{rec.scene_id}|{rec.ann_id}", eval_type=rec.eval_type)
            target_ids = list(rec.object_ids)
        elif task == "grounding":
            text.update(
                description=rec.description,
                record_id=f"{rec.scene_id}|{rec.object_id}|{rec.ann_id}",
                eval_type=rec.eval_type,
            )
            target_ids = [rec.object_id]
        elif task == "caption":
            (_, object_id), refs = rec
            text.update(answers=list(refs), record_id=f"{scene_id}|{object_id}")
            target_ids = [object_id]
        text["answer"] = self._training_answer(text["answers"], task, index, draw)
        text.update(
            self._targets(
                scene, target_ids, world_from_model, strict=task in ("grounding", "caption"), record=text["record_id"]
            )
        )
        return text

    def _targets(
        self, scene: ScanNetScene, object_ids: list[int], world_from_model: torch.Tensor, strict: bool, record: str
    ) -> dict:
        rows = []
        for oid in object_ids:
            row = scene.objects.index_of(oid)
            if row < 0:
                if strict:
                    raise DataError(
                        f"{scene.path}: record {record}: field 'object_id' = {oid} is not a GT object of the scene"
                    )
                continue
            rows.append(row)
        ids = torch.as_tensor([int(scene.objects.object_ids[r]) for r in rows], dtype=torch.long)
        boxes = torch.as_tensor(scene.objects.boxes[rows], dtype=torch.float32).reshape(-1, 6)
        model_from_world = closed_form_inverse_se3(world_from_model.double())
        boxes_model = transform_boxes(boxes.double(), model_from_world).float() if len(rows) else boxes.clone()
        return {"target_ids": ids, "target_boxes": boxes, "target_boxes_model": boxes_model}
