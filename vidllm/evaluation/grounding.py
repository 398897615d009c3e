"""ScanRefer (Acc@0.25/0.5, unique/multiple) and Multi3DRefer (F1@0.25/0.5) evaluation runs (README "Evaluation protocols")."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vidllm.data.annotations import Multi3DReferRecord
from vidllm.errors import DataError
from vidllm.evaluation.clips import SceneClips, load_proposals
from vidllm.metrics.box_metrics import box_iou, multi3drefer_f1, scanrefer_accuracy
from vidllm.progress import progress_bar

__all__ = ["evaluate_scanrefer", "evaluate_multi3drefer"]


def _by_scene(records: list) -> dict[str, list]:
    groups: dict[str, list] = defaultdict(list)
    for rec in records:
        groups[rec.scene_id].append(rec)
    return groups


def _gt_box(scene, object_id: int, where: str) -> np.ndarray:
    row = scene.objects.index_of(int(object_id))
    if row < 0:
        raise DataError(f"{where}: object_id {object_id} is not a GT object of scene {scene.scene_id}")
    return np.asarray(scene.objects.boxes[row], dtype=np.float64)


def evaluate_scanrefer(
    predictor, clips: SceneClips, proposals: str = "gt", limit: int | None = None, progress: bool = True
) -> tuple[list[dict], dict]:
    """Ground every ScanRefer query of the split.

    Args:
        predictor: :class:`~vidllm.evaluation.ModelPredictor` or an object with ``prepare`` / ``ground``.
        proposals: 'gt', 'none' or a directory of ``<scene_id>.npy`` (see :func:`load_proposals`).
        limit: evaluate only the first ``limit`` queries.
    Returns:
        ``predictions`` (per query: ``scene_id, object_id, ann_id, eval_type, description, pred_box,
        gt_box, iou``, boxes ``[cx, cy, cz, dx, dy, dz]`` in the aligned world) and ``metrics``
        (:func:`~vidllm.metrics.box_metrics.scanrefer_accuracy` plus ``proposals``, ``chance`` = mean of
        1 / #proposals, and ``chance@0.25``/``chance@0.5`` — the expected Acc@k of picking a proposal
        uniformly at random). Each prediction carries ``target_visible`` (the target is visible in the
        evaluated clip: :meth:`SceneClips.visible_ids`); ``metrics["visible"]`` holds the same figures
        (``acc@0.25``, ``acc@0.5``, ``count``, ``chance``, ``chance@0.25``, ``chance@0.5``) on those
        queries only, and ``visible_fraction`` their share of all queries.
    """
    records = [r for r in clips.records("grounding") if not isinstance(r, Multi3DReferRecord)]
    if limit:
        records = records[:limit]
    if not records:
        raise DataError(f"{clips.cfg.root}: no ScanRefer records in split '{clips.dataset.split}'")
    predictions: list[dict] = []
    chance: dict = {0.25: [], 0.5: [], "uniform": []}
    chance_visible: dict = {0.25: [], 0.5: [], "uniform": []}
    bar = progress_bar(total=len(records), desc="scanrefer", unit="query", enabled=progress)
    for scene_id, recs in _by_scene(records).items():
        scene = clips.scene(scene_id)
        props = load_proposals(proposals, scene)
        visible = clips.visible_ids(scene_id)
        predictor.prepare(clips.clip(scene_id))
        preds = predictor.ground([r.description for r in recs], props)
        for rec, pred in zip(recs, preds):
            gt = _gt_box(scene, rec.object_id, f"ScanRefer record {scene_id}|{rec.object_id}|{rec.ann_id}")
            best = int(pred.get("proposal_best", -1))
            # a ScanRefer query always has a target: with proposals, the best real proposal is the prediction
            box = (
                props[best].numpy().astype(np.float64)
                if props is not None and best >= 0
                else np.asarray(pred["box"], dtype=np.float64)
            )
            iou = float(box_iou(box, gt))
            predictions.append(
                {
                    "scene_id": scene_id,
                    "object_id": str(rec.object_id),
                    "ann_id": str(rec.ann_id),
                    "eval_type": rec.eval_type,
                    "description": rec.description,
                    "pred_box": box.tolist(),
                    "gt_box": gt.tolist(),
                    "iou": iou,
                    "proposal_index": best if props is not None else -1,
                    "target_visible": int(rec.object_id) in visible,
                }
            )
            if props is not None and len(props):
                ious = box_iou(props.numpy().astype(np.float64), gt[None].repeat(len(props), 0))
                for bucket in (chance, chance_visible) if predictions[-1]["target_visible"] else (chance,):
                    for k in (0.25, 0.5):
                        bucket[k].append(float(np.mean(ious >= k)))
                    bucket["uniform"].append(1.0 / len(props))
        bar.update(len(recs))
    bar.close()
    metrics = scanrefer_accuracy(predictions)
    metrics["proposals"] = proposals if proposals in ("gt", "none") else str(Path(proposals))
    for k in (0.25, 0.5):
        metrics[f"chance@{k:g}"] = float(np.mean(chance[k])) if chance[k] else None
    metrics["chance"] = float(np.mean(chance["uniform"])) if chance["uniform"] else None
    seen = [p for p in predictions if p["target_visible"]]
    metrics["visible"] = (
        scanrefer_accuracy(seen)["overall"] if seen else {"acc@0.25": None, "acc@0.5": None, "count": 0}
    )
    for k in (0.25, 0.5):
        metrics["visible"][f"chance@{k:g}"] = float(np.mean(chance_visible[k])) if chance_visible[k] else None
    metrics["visible"]["chance"] = float(np.mean(chance_visible["uniform"])) if chance_visible["uniform"] else None
    metrics["visible_fraction"] = len(seen) / len(predictions)
    return predictions, metrics


def evaluate_multi3drefer(
    predictor, clips: SceneClips, limit: int | None = None, score_threshold: float | None = None, progress: bool = True
) -> tuple[list[dict], dict]:
    """Multi3DRefer: the regressed slots whose objectness exceeds ``score_threshold`` (default: the
    model's ``vl.grounding.score_threshold``, else 0.5) are the predicted boxes — none for a
    zero-target prediction. Returns predictions (``pred_boxes``, ``gt_boxes`` aligned world) and F1 metrics."""
    records = [r for r in clips.records("grounding") if isinstance(r, Multi3DReferRecord)]
    if limit:
        records = records[:limit]
    if not records:
        raise DataError(
            f"{clips.cfg.root}: no Multi3DRefer records in split '{clips.dataset.split}' (set grounding_source)"
        )
    if score_threshold is None:
        model = getattr(predictor, "model", None)
        score_threshold = model.config.vl.grounding.score_threshold if model is not None else 0.5
    predictions: list[dict] = []
    bar = progress_bar(total=len(records), desc="multi3drefer", unit="query", enabled=progress)
    for scene_id, recs in _by_scene(records).items():
        scene = clips.scene(scene_id)
        predictor.prepare(clips.clip(scene_id))
        preds = predictor.ground([r.description for r in recs], None)
        for rec, pred in zip(recs, preds):
            keep = torch.as_tensor(pred["scores"]) > score_threshold
            pred_boxes = torch.as_tensor(pred["boxes"])[keep].reshape(-1, 6).tolist()
            gt = [
                _gt_box(scene, oid, f"Multi3DRefer record {scene_id}|{rec.ann_id}").tolist() for oid in rec.object_ids
            ]
            predictions.append(
                {
                    "scene_id": scene_id,
                    "ann_id": str(rec.ann_id),
                    "eval_type": rec.eval_type,
                    "description": rec.description,
                    "object_ids": [str(o) for o in rec.object_ids],
                    "pred_boxes": pred_boxes,
                    "gt_boxes": gt,
                }
            )
        bar.update(len(recs))
    bar.close()
    return predictions, multi3drefer_f1(predictions)
