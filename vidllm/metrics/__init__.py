"""Evaluation metrics (README "Evaluation protocols"): pure functions on NumPy arrays / tensors / JSON-like records.

* :mod:`vidllm.metrics.box_metrics` — axis-aligned box IoU, ScanRefer Acc@k, Multi3DRefer F1@k.
* :mod:`vidllm.metrics.answer_metrics` — answer cleaning, EM@1, refined EM (ScanQA / SQA3D).
* :mod:`vidllm.metrics.ngram_metrics` — BLEU / METEOR / ROUGE-L / CIDEr via pycocoevalcap (``eval`` extra).
* :mod:`vidllm.metrics.dense_caption_metrics` — Scan2Cap m@kIoU.
* :mod:`vidllm.metrics.recon_metrics` — depth, point-cloud and camera-pose metrics.

Rates are fractions in ``[0, 1]``.
"""

from vidllm.metrics.answer_metrics import clean_answer, exact_match, qa_exact_match, qa_metrics, refined_exact_match
from vidllm.metrics.box_metrics import (
    MULTI3DREFER_EVAL_TYPES,
    SCANREFER_EVAL_TYPES,
    box_iou,
    box_iou_matrix,
    f1_from_iou_matrix,
    multi3drefer_f1,
    multi3drefer_query_f1,
    scanrefer_accuracy,
)
from vidllm.metrics.dense_caption_metrics import m_at_k_iou, scan2cap_candidates, scan2cap_key, scan2cap_metrics
from vidllm.metrics.ngram_metrics import (
    CAPTION_METRICS,
    CaptionScorer,
    CaptionScores,
    MissingExtraError,
    caption_metrics,
    simple_tokenize,
)
from vidllm.metrics.recon_metrics import (
    abs_rel,
    align_depth_scale,
    delta_accuracy,
    depth_metrics,
    log10_error,
    nearest_distances,
    pointcloud_metrics,
    pose_auc,
    pose_metrics,
    pose_metrics_from_errors,
    relative_pose_errors,
    relative_poses,
    rmse,
    rotation_angle_deg,
    translation_angle_deg,
    voxel_downsample,
)

__all__ = [
    "CAPTION_METRICS",
    "CaptionScorer",
    "CaptionScores",
    "MissingExtraError",
    "caption_metrics",
    "simple_tokenize",
    "MULTI3DREFER_EVAL_TYPES",
    "SCANREFER_EVAL_TYPES",
    "box_iou",
    "box_iou_matrix",
    "f1_from_iou_matrix",
    "multi3drefer_f1",
    "multi3drefer_query_f1",
    "scanrefer_accuracy",
    "clean_answer",
    "exact_match",
    "qa_exact_match",
    "qa_metrics",
    "refined_exact_match",
    "abs_rel",
    "align_depth_scale",
    "delta_accuracy",
    "depth_metrics",
    "log10_error",
    "nearest_distances",
    "pointcloud_metrics",
    "pose_auc",
    "pose_metrics",
    "pose_metrics_from_errors",
    "relative_pose_errors",
    "relative_poses",
    "rmse",
    "rotation_angle_deg",
    "translation_angle_deg",
    "voxel_downsample",
    "m_at_k_iou",
    "scan2cap_candidates",
    "scan2cap_key",
    "scan2cap_metrics",
]
