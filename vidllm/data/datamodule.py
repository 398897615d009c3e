"""Lightning DataModule: synthetic scenes by default (generated into ``data.root`` when it holds
none), real ScanNet exports with ``data.source: scannet``; task mixing by ``data.task_weights``.

Batch dict (``B`` clips, ``S`` frames, ``N`` = most GT objects of a clip in the batch, ``T`` =
most targets of a sample in the batch; padding is marked by the masks):

==========================  ==========================  =============================================
key                         shape / type                meaning
==========================  ==========================  =============================================
``images``                  float ``[B, S, 3, H, W]``   RGB in [0, 1]; H, W multiples of 14
``depth``                   float ``[B, S, H, W]``      GT depth in metres, 0 = invalid
``extrinsics``              float ``[B, S, 3, 4]``      world→camera, model frame = camera 0 (identity)
``intrinsics``              float ``[B, S, 3, 3]``      pixels of ``images``
``world_from_model``        float ``[B, 4, 4]``         ``M · T_c2w,0``: model frame → aligned world
``frame_ids``               long ``[B, S]``             ScanNet frame numbers
``gt_boxes``                float ``[B, N, 6]``         all GT objects (aligned world); the proposals
                                                        of synthetic data
``gt_box_ids``              long ``[B, N]``             aggregation objectIds (-1 = padding)
``gt_labels``               long ``[B, N]``             nyu40 ids (0 = padding)
``gt_boxes_mask``           bool ``[B, N]``             True for real objects
``target_boxes``            float ``[B, T, 6]``         task targets in the aligned world
``target_boxes_model``      float ``[B, T, 6]``         the same in the model frame
                                                        (``inv(world_from_model)`` applied; AABB)
``target_ids``              long ``[B, T]``             objectIds of the targets (-1 = padding)
``target_mask``             bool ``[B, T]``             True for real targets
``task``                    list[str] (B)               'recon' | 'qa' | 'sqa' | 'grounding' | 'caption'
``scene_id``, ``record_id`` list[str] (B)               scene and record (question id / scene|obj|ann)
``question``, ``situation`` list[str] (B)               prompt text ('' when the task has none)
``description``             list[str] (B)               referring expression (grounding)
``answer``                  list[str] (B)               first answer / reference caption ('' if none)
``answers``                 list[list[str]] (B)         all answers / reference captions
``eval_type``               list[str] (B)               ScanRefer 'unique' / 'multiple' (grounding)
``extra_texts``             list[list[dict]] (B)        only with ``data.questions_per_clip > 1``: the other
                                                        records sharing the clip, each a dict of the text
                                                        keys above plus unpadded ``target_ids [T]``,
                                                        ``target_boxes [T, 6]``, ``target_boxes_model [T, 6]``
``vl_text``                 dict of tensors             only when collated with a processor and the batch has
                                                        VL samples: their prompts and answers rendered and
                                                        tokenised (:class:`vl.processing.VidLLMProcessor`, one
                                                        row per sample of :func:`vidllm.processing.text_records`)
==========================  ==========================  =============================================

The training module gives the DataModule its processor (``VidLLMDataModule.processor``) in stage 2, so the
text is tokenised in the DataLoader workers, never in the forward.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from vidllm.config import DataConfig
from vidllm.data.dataset import VidLLMDataset
from vidllm.data.resumable import ResumableDataLoader, ResumableWeightedSampler
from vidllm.errors import DataError
from vidllm.io import atomic_dir
from vidllm.synthetic.world import SynthParams, generate_dataset, is_generated

__all__ = ["VidLLMDataModule", "collate_clips", "ensure_synthetic", "synthetic_params"]

log = logging.getLogger(__name__)

_STACK = ("images", "depth", "extrinsics", "intrinsics", "world_from_model", "frame_ids")
_LISTS = ("task", "scene_id", "record_id", "question", "situation", "description", "answer", "answers", "eval_type")


def _pad(tensors: list[torch.Tensor], fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    n = max([t.shape[0] for t in tensors] + [0])
    out = torch.full((len(tensors), n) + tuple(tensors[0].shape[1:]), fill, dtype=tensors[0].dtype)
    mask = torch.zeros(len(tensors), n, dtype=torch.bool)
    for b, t in enumerate(tensors):  # B items: padding, not a per-frame loop
        out[b, : t.shape[0]] = t
        mask[b, : t.shape[0]] = True
    return out, mask


def collate_clips(items: list[dict], processor=None) -> dict:
    """Collate dataset items into the batch dict documented in this module (with a
    :class:`vl.processing.VidLLMProcessor`, the VL samples' text is encoded into ``vl_text``)."""
    batch: dict = {}
    for key in _STACK:
        shapes = {tuple(it[key].shape) for it in items}
        if len(shapes) > 1:
            raise DataError(
                f"collate: '{key}' differs in shape across the batch {sorted(shapes)}; clips need equal frame counts and image sizes"
            )
        batch[key] = torch.stack([it[key] for it in items])
    batch["gt_boxes"], batch["gt_boxes_mask"] = _pad([it["gt_boxes"] for it in items], 0.0)
    batch["gt_box_ids"], _ = _pad([it["gt_box_ids"] for it in items], -1)
    batch["gt_labels"], _ = _pad([it["gt_labels"] for it in items], 0)
    batch["target_boxes"], batch["target_mask"] = _pad([it["target_boxes"] for it in items], 0.0)
    batch["target_boxes_model"], _ = _pad([it["target_boxes_model"] for it in items], 0.0)
    batch["target_ids"], _ = _pad([it["target_ids"] for it in items], -1)
    for key in _LISTS:
        batch[key] = [it[key] for it in items]
    if any("extra_texts" in it for it in items):
        batch["extra_texts"] = [list(it.get("extra_texts", [])) for it in items]
    if processor is not None:
        from vidllm.processing import encode_batch_text

        text = encode_batch_text(batch, processor)
        if text is not None:
            batch["vl_text"] = text
    return batch


def synthetic_params(cfg: DataConfig) -> SynthParams:
    """The generator settings of ``cfg``'s synthetic scenes (``data.synthetic_*``; language about the objects
    visible in a ``data.num_frames`` clip; depth frames 5/7 of the colour size)."""
    return SynthParams(
        num_frames=cfg.synthetic_frames,
        width=cfg.synthetic_width,
        height=cfg.synthetic_height,
        depth_width=max(14, round(cfg.synthetic_width * 5 / 7)),
        depth_height=max(14, round(cfg.synthetic_height * 5 / 7)),
        trajectory=cfg.synthetic_trajectory,
        arc_degrees=cfg.synthetic_arc_degrees,
        hfov_deg=cfg.synthetic_hfov_degrees,
        clip_frames=cfg.num_frames,
    )


def ensure_synthetic(cfg: DataConfig) -> Path:
    """Generate ``cfg.synthetic_scenes`` synthetic scenes into ``cfg.root`` unless it already holds scenes.

    Generation goes to a temporary sibling folder that is renamed onto ``root`` when complete, so
    an interrupted run never leaves a half-written dataset.
    """
    root = Path(cfg.root)
    scans = root / "scans"
    if is_generated(root) or (scans.is_dir() and any(scans.iterdir())):
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(
            f"{root}: data.root is not empty but holds no scenes under scans/; choose an empty or missing folder"
        )
    params = synthetic_params(cfg)
    log.info("generating %d synthetic scenes into %s", cfg.synthetic_scenes, root)
    with atomic_dir(root) as tmp:  # root is missing or empty here: replacing it loses nothing
        generate_dataset(tmp, cfg.synthetic_scenes, seed=cfg.seed, params=params)
    return root


class VidLLMDataModule(L.LightningDataModule):
    """Train / val DataLoaders of :class:`VidLLMDataset` with task mixing and padded collate."""

    def __init__(self, cfg: DataConfig | None = None):
        super().__init__()
        self.cfg = cfg or DataConfig()
        self.train_set: VidLLMDataset | None = None
        self.val_set: VidLLMDataset | None = None
        self.processor = None
        """A :class:`vl.processing.VidLLMProcessor` for the collate (set by the training module in stage 2)."""

    def prepare_data(self) -> None:
        if self.cfg.source == "synthetic":
            ensure_synthetic(self.cfg)
        elif not (Path(self.cfg.root) / "scans").is_dir():
            raise DataError(
                f"{Path(self.cfg.root) / 'scans'}: ScanNet scene folders not found (data.root with data.source = scannet)"
            )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = VidLLMDataset(self.cfg, "train", deterministic=False)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = VidLLMDataset(self.cfg, "val", deterministic=True)

    def task_sample_weights(self, dataset: VidLLMDataset) -> torch.Tensor:
        """Per-sample weights ``[len]`` so that a task is drawn with probability ∝ its data.task_weights entry."""
        counts = dataset.task_counts()
        weight_of = dict(zip(self.cfg.tasks, self.cfg.task_weights))
        weights = torch.tensor([weight_of[t] / counts[t] for t, _ in dataset.samples], dtype=torch.double)
        if not len(weights) or weights.sum() <= 0:
            raise DataError(f"{self.cfg.root}: no training samples for tasks {self.cfg.tasks}")
        return weights

    def _loader(self, dataset: VidLLMDataset, sampler=None) -> DataLoader:
        workers = self.cfg.num_workers
        kind = ResumableDataLoader if isinstance(sampler, ResumableWeightedSampler) else DataLoader
        return kind(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate_clips
            if self.processor is None
            else functools.partial(collate_clips, processor=self.processor),
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        sampler = ResumableWeightedSampler(
            self.task_sample_weights(self.train_set),
            num_samples=len(self.train_set),
            seed=self.cfg.seed,
            draw_keys=True,
        )
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        return self._loader(self.val_set)
