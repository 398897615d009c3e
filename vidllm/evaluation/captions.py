"""Scan2Cap evaluation run: a caption per annotated object, scored @0.5 IoU (README "Evaluation protocols")."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from vidllm.errors import DataError
from vidllm.evaluation.clips import SceneClips, load_proposals
from vidllm.metrics.box_metrics import box_iou
from vidllm.metrics.dense_caption_metrics import scan2cap_key, scan2cap_metrics
from vidllm.metrics.ngram_metrics import MissingExtraError
from vidllm.progress import progress_bar
from vl.prompts import render_prompt

__all__ = ["evaluate_scan2cap"]


def evaluate_scan2cap(
    predictor,
    clips: SceneClips,
    proposals: str = "gt",
    limit: int | None = None,
    iou_threshold: float = 0.5,
    max_new_tokens: int | None = None,
    scorer=None,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Caption every object with ScanRefer descriptions.

    Each GT object is matched to the proposal with the highest IoU (``proposals``: 'gt' or a
    directory of ``<scene_id>.npy``); the caption prompt names that proposal's centre in the model
    frame; the caption counts only if the IoU is ≥ ``iou_threshold``. ``scorer`` replaces
    pycocoevalcap (see :func:`vidllm.metrics.ngram_metrics.caption_metrics`).
    """
    if proposals == "none":
        raise DataError("--proposals none: Scan2Cap needs boxes to caption; use 'gt' or a proposal directory")
    objects = clips.records("caption")
    if limit:
        objects = objects[:limit]
    if not objects:
        raise DataError(
            f"{clips.cfg.root}: no ScanRefer descriptions (Scan2Cap references) in split '{clips.dataset.split}'"
        )
    groups: dict[str, list] = defaultdict(list)
    for (scene_id, object_id), refs in objects:
        groups[scene_id].append((object_id, refs))
    predictions: list[dict] = []
    bar = progress_bar(total=len(objects), desc="scan2cap", unit="object", enabled=progress)
    for scene_id, items in groups.items():
        scene = clips.scene(scene_id)
        props = load_proposals(proposals, scene).numpy().astype(np.float64)
        predictor.prepare(clips.clip(scene_id))
        prompts, rows = [], []
        for object_id, refs in items:
            row = scene.objects.index_of(int(object_id))
            if row < 0:
                raise DataError(f"Scan2Cap reference {scene_id}|{object_id}: not a GT object of the scene")
            gt = np.asarray(scene.objects.boxes[row], dtype=np.float64)
            ious = box_iou(props, gt[None].repeat(len(props), 0)) if len(props) else np.zeros(0)
            best = int(np.argmax(ious)) if len(ious) else -1
            box = props[best] if best >= 0 else gt * 0
            prompts.append(render_prompt("caption", center=predictor.model_frame_center(torch.as_tensor(box))))
            rows.append((object_id, refs, box, float(ious[best]) if best >= 0 else 0.0))
        for (object_id, refs, box, iou), text in zip(rows, predictor.generate(prompts, max_new_tokens)):
            predictions.append(
                {
                    "key": scan2cap_key(scene_id, object_id),
                    "scene_id": scene_id,
                    "object_id": str(object_id),
                    "caption": text,
                    "box": box.tolist(),
                    "iou": iou,
                    "references": list(refs),
                }
            )
        bar.update(len(items))
    bar.close()
    preds = {p["key"]: p["caption"] for p in predictions}
    ious = {p["key"]: p["iou"] for p in predictions}
    refs = {p["key"]: p["references"] for p in predictions}
    try:
        metrics = scan2cap_metrics(preds, ious, refs, iou_threshold, scorer=scorer)
    except MissingExtraError as err:
        metrics = {
            "count": len(preds),
            "matched": int(sum(v >= iou_threshold for v in ious.values())),
            "unavailable": {"captions": str(err)},
        }
    return predictions, metrics
