"""Visual-grounding metrics: ScanRefer Acc@k and Multi3DRefer F1@k (README "Evaluation protocols").

Boxes are axis-aligned ``[cx, cy, cz, dx, dy, dz]`` in metres in the aligned world; their IoU is
``inter / (v1 + v2 − inter)`` computed by :func:`recon.geometry.aabb_iou` (float64).

All rates are fractions in ``[0, 1]`` (multiply by 100 for the percentages papers print). A
breakdown with no queries reports ``None`` for its rates and ``count == 0``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from recon.geometry import aabb_iou, aabb_iou_pairwise

__all__ = [
    "box_iou",
    "box_iou_matrix",
    "scanrefer_accuracy",
    "SCANREFER_EVAL_TYPES",
    "f1_from_iou_matrix",
    "multi3drefer_query_f1",
    "multi3drefer_f1",
    "MULTI3DREFER_EVAL_TYPES",
]

SCANREFER_EVAL_TYPES = ("unique", "multiple")
"""ScanRefer splits: the target is the only object of its class in the scene, or one of several."""

MULTI3DREFER_EVAL_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")
"""Multi3DRefer query types: zero / single / multiple target(s), with or without distractors."""


def _as_boxes(boxes, what: str, allow_empty: bool = False) -> np.ndarray:
    """Boxes (array-like / tensor ``[..., 6]``, or ``None`` / ``[]`` when ``allow_empty``) → float64 ``[..., 6]``."""
    if boxes is None:
        if allow_empty:
            return np.zeros((0, 6), dtype=np.float64)
        raise ValueError(f"vidllm/metrics/box_metrics.py: {what} is None; expected boxes of shape [..., 6]")
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().double().numpy()
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"vidllm/metrics/box_metrics.py: {what} is not a numeric array of boxes [..., 6] ({exc})"
        ) from exc
    if allow_empty and arr.size == 0:
        return np.zeros((0, 6), dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 6:
        raise ValueError(
            f"vidllm/metrics/box_metrics.py: {what} has shape {tuple(arr.shape)}; expected [..., 6] = [cx, cy, cz, dx, dy, dz]"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"vidllm/metrics/box_metrics.py: {what} holds non-finite values")
    return arr


def box_iou(pred, gt) -> np.ndarray:
    """Element-wise IoU of broadcastable axis-aligned boxes.

    Args:
        pred: boxes ``[..., 6]`` (NumPy array, tensor or nested list).
        gt: boxes ``[..., 6]`` broadcastable against ``pred``.

    Returns:
        float64 array ``[...]`` of IoUs in ``[0, 1]`` (a 0-d array for single boxes).
    """
    a = torch.from_numpy(_as_boxes(pred, "pred"))
    b = torch.from_numpy(_as_boxes(gt, "gt"))
    return aabb_iou(a, b).numpy()


def box_iou_matrix(pred, gt) -> np.ndarray:
    """IoU matrix between two box sets.

    Args:
        pred: boxes ``[P, 6]`` (``P`` may be 0).
        gt: boxes ``[G, 6]`` (``G`` may be 0).

    Returns:
        float64 array ``[P, G]``.
    """
    a = _as_boxes(pred, "pred", allow_empty=True).reshape(-1, 6)
    b = _as_boxes(gt, "gt", allow_empty=True).reshape(-1, 6)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    return aabb_iou_pairwise(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _field(record: Mapping, key: str, index: int):
    if key not in record:
        raise ValueError(
            f"vidllm/metrics/box_metrics.py: prediction record {index} has no field '{key}' (fields: {sorted(record)})"
        )
    return record[key]


def _threshold_key(prefix: str, k: float) -> str:
    return f"{prefix}@{k:g}"


def scanrefer_accuracy(
    records: Iterable[Mapping],
    thresholds: Sequence[float] = (0.25, 0.5),
    recompute_iou: bool = False,
) -> dict[str, dict[str, float | int | None]]:
    """ScanRefer Acc@k: the fraction of queries whose predicted box has IoU ≥ k (inclusive) with the GT box.

    Args:
        records: per-query dicts with ``scene_id, object_id, ann_id, eval_type, pred_box, gt_box, iou``
            (the ``predictions.json`` rows of ``vidllm eval scanrefer``). ``eval_type`` is ``"unique"``
            or ``"multiple"``; ``pred_box`` / ``gt_box`` are ``[6]``; ``pred_box`` may be ``None`` (no
            prediction → IoU 0). ``iou`` is used as given unless ``recompute_iou`` (or it is missing),
            in which case it is computed from the boxes.
        thresholds: IoU thresholds ``k``.
        recompute_iou: recompute every IoU from ``pred_box`` / ``gt_box``.

    Returns:
        ``{"overall" | "unique" | "multiple": {"acc@0.25": float | None, "acc@0.5": ..., "count": int}}``.
    """
    ious: list[float] = []
    types: list[str] = []
    for index, record in enumerate(records):
        eval_type = _field(record, "eval_type", index)
        if eval_type not in SCANREFER_EVAL_TYPES:
            raise ValueError(
                f"vidllm/metrics/box_metrics.py: record {index} has eval_type={eval_type!r}; expected one of {SCANREFER_EVAL_TYPES}"
            )
        if recompute_iou or record.get("iou") is None:
            pred_box = _field(record, "pred_box", index)
            gt_box = _as_boxes(_field(record, "gt_box", index), f"record {index} gt_box")
            iou = 0.0 if pred_box is None else float(box_iou(_as_boxes(pred_box, f"record {index} pred_box"), gt_box))
        else:
            iou = float(record["iou"])
            if not np.isfinite(iou):
                raise ValueError(f"vidllm/metrics/box_metrics.py: record {index} has a non-finite iou={iou}")
        ious.append(iou)
        types.append(eval_type)
    iou_arr = np.asarray(ious, dtype=np.float64)
    type_arr = np.asarray(types, dtype=object)
    result: dict[str, dict[str, float | int | None]] = {}
    for split in ("overall",) + SCANREFER_EVAL_TYPES:
        sel = iou_arr if split == "overall" else iou_arr[type_arr == split]
        entry: dict[str, float | int | None] = {}
        for k in thresholds:
            entry[_threshold_key("acc", k)] = float(np.mean(sel >= k)) if len(sel) else None
        entry["count"] = int(len(sel))
        result[split] = entry
    return result


def f1_from_iou_matrix(iou: np.ndarray, threshold: float) -> float:
    """Multi3DRefer F1 of one query from its IoU matrix, with one-to-one Hungarian matching.

    The assignment maximises the summed IoU over all predicted/GT pairs (independent of the
    threshold); a matched pair is a true positive when its IoU ≥ ``threshold``. Then
    ``F1 = 2·TP / (P + G)`` (= 2·precision·recall / (precision + recall)). Zero-target queries
    (``G == 0``) score 1 iff no box is predicted (``P == 0``), else 0.

    Args:
        iou: ``[P, G]`` IoUs between the predicted and the GT boxes.
        threshold: IoU threshold ``k``.

    Returns:
        F1 in ``[0, 1]``.
    """
    iou = np.asarray(iou, dtype=np.float64)
    if iou.ndim != 2:
        raise ValueError(f"vidllm/metrics/box_metrics.py: iou matrix has shape {tuple(iou.shape)}; expected [P, G]")
    num_pred, num_gt = iou.shape
    if num_gt == 0:
        return 1.0 if num_pred == 0 else 0.0
    if num_pred == 0:
        return 0.0
    rows, cols = linear_sum_assignment(iou, maximize=True)
    true_pos = int(np.count_nonzero(iou[rows, cols] >= threshold))
    return 2.0 * true_pos / (num_pred + num_gt)


def multi3drefer_query_f1(pred_boxes, gt_boxes, thresholds: Sequence[float] = (0.25, 0.5)) -> dict[float, float]:
    """F1@k of one Multi3DRefer query.

    Args:
        pred_boxes: predicted boxes ``[P, 6]`` (``None`` or empty for "no target").
        gt_boxes: GT boxes ``[G, 6]`` (empty for a zero-target query).
        thresholds: IoU thresholds ``k``.

    Returns:
        ``{k: F1@k}``.
    """
    iou = box_iou_matrix(pred_boxes, gt_boxes)
    return {k: f1_from_iou_matrix(iou, k) for k in thresholds}


def multi3drefer_f1(
    records: Iterable[Mapping], thresholds: Sequence[float] = (0.25, 0.5)
) -> dict[str, dict[str, float | int | None]]:
    """Multi3DRefer F1@k averaged over queries, per eval type and overall.

    Args:
        records: per-query dicts with ``eval_type`` (one of :data:`MULTI3DREFER_EVAL_TYPES`),
            ``pred_boxes`` ``[P, 6]`` and ``gt_boxes`` ``[G, 6]`` (lists or arrays; may be empty).
        thresholds: IoU thresholds ``k``.

    Returns:
        ``{"zt_w_d" | "zt_wo_d" | "st_w_d" | "st_wo_d" | "mt" | "overall": {"f1@0.25": float | None, "f1@0.5": ..., "count": int}}``.
    """
    scores: dict[float, list[float]] = {k: [] for k in thresholds}
    types: list[str] = []
    for index, record in enumerate(records):
        eval_type = _field(record, "eval_type", index)
        if eval_type not in MULTI3DREFER_EVAL_TYPES:
            raise ValueError(
                f"vidllm/metrics/box_metrics.py: record {index} has eval_type={eval_type!r}; expected one of {MULTI3DREFER_EVAL_TYPES}"
            )
        pred = _as_boxes(_field(record, "pred_boxes", index), f"record {index} pred_boxes", allow_empty=True)
        gt = _as_boxes(_field(record, "gt_boxes", index), f"record {index} gt_boxes", allow_empty=True)
        for k, f1 in multi3drefer_query_f1(pred, gt, thresholds).items():
            scores[k].append(f1)
        types.append(eval_type)
    type_arr = np.asarray(types, dtype=object)
    result: dict[str, dict[str, float | int | None]] = {}
    for split in MULTI3DREFER_EVAL_TYPES + ("overall",):
        mask = np.ones(len(types), dtype=bool) if split == "overall" else type_arr == split
        entry: dict[str, float | int | None] = {}
        for k in thresholds:
            sel = np.asarray(scores[k], dtype=np.float64)[mask]
            entry[_threshold_key("f1", k)] = float(sel.mean()) if len(sel) else None
        entry["count"] = int(mask.sum())
        result[split] = entry
    return result
