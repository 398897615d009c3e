"""Reconstruction metrics: depth, point clouds and camera poses (README "Evaluation protocols").

* Depth (metres): δ1, AbsRel, RMSE, log10 on valid GT pixels. The metric model is evaluated with
  **no per-image alignment** (``alignment="none"``); ``"median"`` / ``"scale"`` alignment exist
  for relative-depth baselines and must be stated when used.
* Point clouds (metres): Acc / Comp (mean nearest-neighbour distances, scipy cKDTree), Precision /
  Recall / F-score at a distance threshold (5 cm) after voxel-mean down-sampling (2 cm).
* Poses: relative rotation / translation-direction errors over all frame pairs, RRA@15, RTA@15
  and AUC@30 (the VGGT / PoseDiffusion definition).

Rates are fractions in ``[0, 1]``. Inputs may be NumPy arrays or torch tensors; all arithmetic is
float64 NumPy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from recon.geometry import closed_form_inverse_se3, to_homogeneous

__all__ = [
    "delta_accuracy",
    "abs_rel",
    "rmse",
    "log10_error",
    "align_depth_scale",
    "depth_metrics",
    "voxel_downsample",
    "nearest_distances",
    "pointcloud_metrics",
    "relative_poses",
    "rotation_angle_deg",
    "translation_angle_deg",
    "relative_pose_errors",
    "pose_auc",
    "pose_metrics_from_errors",
    "pose_metrics",
]

_PRED_DEPTH_FLOOR = 1e-6
"""Predicted depths are clipped to at least this many metres so ratios and logs stay finite."""


def _np(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"vidllm/metrics/recon_metrics.py: {what} is a scalar; expected an array")
    return arr


# ------------------------------------------------------------------------------------------ depth


def _masked_mean(values: np.ndarray, valid: np.ndarray | None, axis) -> np.ndarray | float:
    """Mean of ``values`` over ``valid`` entries along ``axis`` (NaN where a slice has none)."""
    if valid is None:
        return values.mean(axis=axis)
    count = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / np.where(count > 0, count, np.nan)


def _safe(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if valid is None:
        return pred, gt
    return np.where(valid, pred, 1.0), np.where(valid, gt, 1.0)


def delta_accuracy(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, threshold: float = 1.25, axis=None
):
    """δ: fraction of valid pixels with ``max(d/g, g/d) < threshold`` (δ1: threshold 1.25).

    Args:
        pred: predicted depths ``[...]`` (> 0 where valid).
        gt: GT depths ``[...]`` (> 0 where valid).
        valid: optional bool mask ``[...]``.
        axis: axes averaged over (``None`` = all → a float).
    """
    p, g = _safe(pred, gt, valid)
    return _masked_mean((np.maximum(p / g, g / p) < threshold).astype(np.float64), valid, axis)


def abs_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, axis=None):
    """AbsRel = mean(|d − g| / g) over valid pixels (arguments as :func:`delta_accuracy`)."""
    p, g = _safe(pred, gt, valid)
    return _masked_mean(np.abs(p - g) / g, valid, axis)


def rmse(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, axis=None):
    """RMSE = sqrt(mean((d − g)²)) over valid pixels, in metres (arguments as :func:`delta_accuracy`)."""
    p, g = _safe(pred, gt, valid)
    return np.sqrt(_masked_mean((p - g) ** 2, valid, axis))


def log10_error(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, axis=None):
    """log10 = mean(|log10 d − log10 g|) over valid pixels (arguments as :func:`delta_accuracy`)."""
    p, g = _safe(pred, gt, valid)
    return _masked_mean(np.abs(np.log10(p) - np.log10(g)), valid, axis)


def align_depth_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, mode: str) -> np.ndarray:
    """Per-image scale alignment of ``pred [N, H, W]`` onto ``gt [N, H, W]`` using the ``valid [N, H, W]`` pixels.

    ``"none"``: unchanged (metric evaluation); ``"median"``: ``s = median(g) / median(d)``;
    ``"scale"``: least squares ``s = Σ d·g / Σ d²``. Images without valid pixels keep ``s = 1``.
    """
    if mode == "none":
        return pred
    if mode == "median":
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            scale = np.nanmedian(np.where(valid, gt, np.nan), axis=(-2, -1)) / np.nanmedian(
                np.where(valid, pred, np.nan), axis=(-2, -1)
            )
    elif mode == "scale":
        num = np.where(valid, pred * gt, 0.0).sum(axis=(-2, -1))
        den = np.where(valid, pred * pred, 0.0).sum(axis=(-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = num / den
    else:
        raise ValueError(f"vidllm/metrics/recon_metrics.py: alignment={mode!r}; expected 'none', 'median' or 'scale'")
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return pred * scale[:, None, None]


def depth_metrics(
    pred,
    gt,
    valid_mask=None,
    min_depth: float = 0.0,
    max_depth: float | None = None,
    alignment: str = "none",
    per_image: bool = True,
) -> dict[str, float | int | None]:
    """δ1, AbsRel, RMSE and log10 of predicted against GT depth maps (vectorised over images).

    A pixel is valid when its GT is finite, ``> min_depth`` (and > 0), ``≤ max_depth`` if given,
    and ``valid_mask`` is true there. Predictions are clipped to ``[1e-6, max_depth]`` metres
    (non-finite predictions count as the floor) so the ratios and logs stay finite.

    Args:
        pred: predicted depth ``[H, W]``, ``[S, H, W]`` or ``[..., H, W]`` (metres).
        gt: GT depth with the same shape (0 = invalid).
        valid_mask: optional bool mask of the same shape.
        min_depth, max_depth: GT depth range evaluated.
        alignment: ``"none"`` (metric evaluation, default), ``"median"`` or ``"scale"``, per image.
        per_image: average the per-image metrics over images with ≥ 1 valid pixel (default), or
            pool all valid pixels of all images.

    Returns:
        ``{"delta1", "abs_rel", "rmse", "log10": float | None, "num_images": int, "num_pixels": int}``
        (``None`` for the metrics when no pixel is valid); ``num_images`` counts images with valid pixels.
    """
    if alignment not in ("none", "median", "scale"):
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: alignment={alignment!r}; expected 'none', 'median' or 'scale'"
        )
    pred = _np(pred, "pred depth")
    gt = _np(gt, "gt depth")
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: pred depth {pred.shape} and gt depth {gt.shape} must have the same shape [..., H, W]"
        )
    valid = np.isfinite(gt) & (gt > max(min_depth, 0.0))
    if max_depth is not None:
        valid &= gt <= max_depth
    if valid_mask is not None:
        mask = _np(valid_mask, "valid_mask").astype(bool)
        if mask.shape != gt.shape:
            raise ValueError(
                f"vidllm/metrics/recon_metrics.py: valid_mask {mask.shape} must match the depth shape {gt.shape}"
            )
        valid &= mask
    pred = np.where(np.isfinite(pred), pred, _PRED_DEPTH_FLOOR)
    pred = np.clip(pred, _PRED_DEPTH_FLOOR, max_depth if max_depth is not None else np.inf)
    hw = pred.shape[-2:]
    pred, gt, valid = pred.reshape(-1, *hw), gt.reshape(-1, *hw), valid.reshape(-1, *hw)
    pred = align_depth_scale(pred, gt, valid, alignment)
    has_valid = valid.any(axis=(-2, -1))
    num_pixels = int(valid.sum())
    if num_pixels == 0:
        return {"delta1": None, "abs_rel": None, "rmse": None, "log10": None, "num_images": 0, "num_pixels": 0}
    funcs = {"delta1": delta_accuracy, "abs_rel": abs_rel, "rmse": rmse, "log10": log10_error}
    out: dict[str, float | int | None] = {}
    for name, fn in funcs.items():
        if per_image:
            out[name] = float(np.mean(fn(pred[has_valid], gt[has_valid], valid[has_valid], axis=(-2, -1))))
        else:
            out[name] = float(fn(pred, gt, valid))
    out["num_images"] = int(has_valid.sum())
    out["num_pixels"] = num_pixels
    return out


# ------------------------------------------------------------------------------------ point clouds


def _points(x, what: str) -> np.ndarray:
    arr = _np(x, what)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"vidllm/metrics/recon_metrics.py: {what} has shape {arr.shape}; expected [N, 3]")
    return arr[np.all(np.isfinite(arr), axis=1)]


def voxel_downsample(points, voxel_size: float) -> np.ndarray:
    """Deterministic voxel-mean down-sampling.

    Each point falls in the voxel ``floor(p / voxel_size)`` (a grid anchored at the origin); each
    occupied voxel is replaced by the mean of its points. Output rows are sorted by voxel index
    (x, then y, then z), so the result does not depend on the input order beyond float rounding.

    Args:
        points: ``[N, 3]`` (non-finite rows are dropped).
        voxel_size: edge length in metres (> 0).

    Returns:
        ``[M, 3]`` float64 with ``M ≤ N``.
    """
    if not voxel_size > 0:
        raise ValueError(f"vidllm/metrics/recon_metrics.py: voxel_size={voxel_size}; expected > 0")
    pts = _points(points, "points")
    if len(pts) == 0:
        return pts
    cells = np.floor(pts / voxel_size).astype(np.int64)
    cells -= cells.min(axis=0)
    dims = cells.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) < 2.0**62:
        linear = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
        _, inverse = np.unique(linear, return_inverse=True)
    else:
        _, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64)
    sums = np.stack([np.bincount(inverse, weights=pts[:, d], minlength=len(counts)) for d in range(3)], axis=1)
    return sums / counts[:, None]


def nearest_distances(src, dst) -> np.ndarray:
    """Distance from every point of ``src [N, 3]`` to its nearest neighbour in ``dst [M, 3]`` → ``[N]``."""
    src = _points(src, "src points")
    dst = _points(dst, "dst points")
    if len(dst) == 0:
        raise ValueError("vidllm/metrics/recon_metrics.py: nearest_distances needs a non-empty dst point set")
    dist, _ = cKDTree(dst).query(src, k=1)
    return np.asarray(dist, dtype=np.float64)


def pointcloud_metrics(pred, gt, threshold: float = 0.05, voxel_size: float | None = 0.02) -> dict[str, float | int]:
    """Accuracy, completeness, precision, recall and F-score of a predicted point cloud.

    After voxel-mean down-sampling of both clouds (``voxel_size``; ``None``/0 = off):
    ``Acc = mean_p d(p, GT)``, ``Comp = mean_g d(g, Pred)`` (metres), ``Precision = frac_p[d(p, GT) < τ]``,
    ``Recall = frac_g[d(g, Pred) < τ]``, ``F = 2PR / (P + R)`` (0 when P + R = 0), ``Chamfer = (Acc + Comp) / 2``.

    Args:
        pred: predicted points ``[N, 3]`` (metres, same frame as ``gt``).
        gt: GT points ``[M, 3]`` (e.g. scene-mesh vertices).
        threshold: τ in metres (default 5 cm).
        voxel_size: down-sampling voxel in metres (default 2 cm).

    Returns:
        ``{"acc", "comp", "acc_median", "comp_median", "chamfer", "precision", "recall", "fscore": float,
        "num_pred", "num_gt": int}`` (point counts after down-sampling).
    """
    pred = _points(pred, "pred points")
    gt = _points(gt, "gt points")
    if voxel_size:
        pred = voxel_downsample(pred, voxel_size)
        gt = voxel_downsample(gt, voxel_size)
    if len(pred) == 0 or len(gt) == 0:
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: empty point cloud (pred: {len(pred)} points, gt: {len(gt)} points)"
        )
    d_pred = nearest_distances(pred, gt)
    d_gt = nearest_distances(gt, pred)
    precision = float(np.mean(d_pred < threshold))
    recall = float(np.mean(d_gt < threshold))
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    acc, comp = float(d_pred.mean()), float(d_gt.mean())
    return {
        "acc": acc,
        "comp": comp,
        "acc_median": float(np.median(d_pred)),
        "comp_median": float(np.median(d_gt)),
        "chamfer": 0.5 * (acc + comp),
        "precision": precision,
        "recall": recall,
        "fscore": float(fscore),
        "num_pred": int(len(pred)),
        "num_gt": int(len(gt)),
    }


# ------------------------------------------------------------------------------------------ poses


def _extrinsics(x, what: str) -> torch.Tensor:
    arr = _np(x, what)
    if arr.ndim != 3 or arr.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: {what} has shape {arr.shape}; expected [S, 3, 4] or [S, 4, 4] world→camera"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"vidllm/metrics/recon_metrics.py: {what} holds non-finite values")
    return to_homogeneous(torch.from_numpy(arr))


def relative_poses(extrinsics) -> np.ndarray:
    """Relative poses ``T_ij = E_j · E_i⁻¹`` (camera i → camera j) for all pairs ``i < j``.

    Args:
        extrinsics: world→camera ``[S, 3, 4]`` or ``[S, 4, 4]``.

    Returns:
        ``[S·(S−1)/2, 4, 4]`` in the pair order of ``np.triu_indices(S, 1)``.
    """
    ext = _extrinsics(extrinsics, "extrinsics")
    i, j = np.triu_indices(ext.shape[0], 1)
    rel = ext[torch.from_numpy(j)] @ closed_form_inverse_se3(ext[torch.from_numpy(i)])
    return rel.numpy()


def rotation_angle_deg(rot_a: np.ndarray, rot_b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) of ``R_aᵀ R_b`` for rotations ``[..., 3, 3]``, via atan2(sin, cos) (stable near 0 and 180°)."""
    rel = np.swapaxes(rot_a, -1, -2) @ rot_b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    skew = rel - np.swapaxes(rel, -1, -2)
    sin = 0.5 * np.linalg.norm(np.stack([skew[..., 2, 1], skew[..., 0, 2], skew[..., 1, 0]], axis=-1), axis=-1)
    return np.degrees(np.arctan2(sin, cos))


def translation_angle_deg(
    t_a: np.ndarray, t_b: np.ndarray, sign_ambiguity: bool = True, eps: float = 1e-12
) -> np.ndarray:
    """Angle (degrees) between translation directions ``[..., 3]``.

    With ``sign_ambiguity`` (VGGT / PoseDiffusion) the angle is ``min(θ, 180° − θ)``. A zero-length
    translation has no direction: the error is 0 when both are zero, otherwise 90°.
    """
    na = np.linalg.norm(t_a, axis=-1)
    nb = np.linalg.norm(t_b, axis=-1)
    angle = np.degrees(np.arctan2(np.linalg.norm(np.cross(t_a, t_b), axis=-1), np.sum(t_a * t_b, axis=-1)))
    if sign_ambiguity:
        angle = np.minimum(angle, 180.0 - angle)
    zero_a, zero_b = na <= eps, nb <= eps
    angle = np.where(zero_a | zero_b, 90.0, angle)
    return np.where(zero_a & zero_b, 0.0, angle)


def relative_pose_errors(pred_extrinsics, gt_extrinsics, sign_ambiguity: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Relative rotation and translation-direction errors (degrees) over all frame pairs ``i < j``.

    Args:
        pred_extrinsics: predicted world→camera ``[S, 3, 4]`` (any scale and world frame).
        gt_extrinsics: GT world→camera ``[S, 3, 4]``.
        sign_ambiguity: see :func:`translation_angle_deg`.

    Returns:
        ``(rot_err [P], trans_err [P])`` with ``P = S·(S−1)/2``.
    """
    pred = relative_poses(pred_extrinsics)
    gt = relative_poses(gt_extrinsics)
    if pred.shape != gt.shape:
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: pred has {pred.shape[0]} frame pairs, gt {gt.shape[0]}: frame counts differ"
        )
    rot = rotation_angle_deg(gt[:, :3, :3], pred[:, :3, :3])
    trans = translation_angle_deg(gt[:, :3, 3], pred[:, :3, 3], sign_ambiguity)
    return rot, trans


def pose_auc(rot_err, trans_err, max_threshold: int = 30) -> float:
    """AUC@max_threshold (VGGT / PoseDiffusion): histogram of ``max(rot_err, trans_err)`` in 1° bins
    over ``[0, max_threshold]``, cumulative sum normalised by the number of pairs, averaged over the bins.

    Args:
        rot_err, trans_err: ``[P]`` errors in degrees.
    """
    rot_err, trans_err = np.asarray(rot_err, dtype=np.float64), np.asarray(trans_err, dtype=np.float64)
    if rot_err.shape != trans_err.shape or rot_err.ndim != 1 or len(rot_err) == 0:
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: pose_auc needs two non-empty [P] error arrays, got {rot_err.shape} and {trans_err.shape}"
        )
    max_err = np.maximum(rot_err, trans_err)
    hist, _ = np.histogram(max_err, bins=np.arange(max_threshold + 1))
    return float(np.mean(np.cumsum(hist / len(max_err))))


def pose_metrics_from_errors(
    rot_err, trans_err, thresholds: Sequence[float] = (15.0,), auc_threshold: int = 30
) -> dict[str, float | int]:
    """RRA@k / RTA@k (fraction of pairs with error < k degrees) and AUC@auc_threshold from pooled pair errors.

    Returns:
        ``{"rra@15": float, "rta@15": float, "auc@30": float, "num_pairs": int}`` (keys follow the arguments).
    """
    rot_err, trans_err = np.asarray(rot_err, dtype=np.float64), np.asarray(trans_err, dtype=np.float64)
    out: dict[str, float | int] = {}
    for k in thresholds:
        out[f"rra@{k:g}"] = float(np.mean(rot_err < k))
        out[f"rta@{k:g}"] = float(np.mean(trans_err < k))
    out[f"auc@{auc_threshold:g}"] = pose_auc(rot_err, trans_err, auc_threshold)
    out["num_pairs"] = int(len(rot_err))
    return out


def pose_metrics(
    pred_extrinsics,
    gt_extrinsics,
    thresholds: Sequence[float] = (15.0,),
    auc_threshold: int = 30,
    sign_ambiguity: bool = True,
) -> dict[str, float | int]:
    """RRA@15, RTA@15 and AUC@30 of predicted camera trajectories.

    Args:
        pred_extrinsics: world→camera ``[S, 3, 4]`` or a batch of sequences ``[B, S, 3, 4]``
            (pairs are formed within each sequence and pooled).
        gt_extrinsics: same shape.
        thresholds: RRA / RTA thresholds in degrees.
        auc_threshold: AUC upper threshold in degrees.
        sign_ambiguity: see :func:`translation_angle_deg`.

    Returns:
        see :func:`pose_metrics_from_errors`.
    """
    pred = _np(pred_extrinsics, "pred extrinsics")
    gt = _np(gt_extrinsics, "gt extrinsics")
    if pred.shape != gt.shape:
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: pred extrinsics {pred.shape} and gt extrinsics {gt.shape} differ in shape"
        )
    if pred.ndim == 3:
        pred, gt = pred[None], gt[None]
    if pred.ndim != 4 or pred.shape[1] < 2:
        raise ValueError(
            f"vidllm/metrics/recon_metrics.py: extrinsics shape {pred.shape}; expected [S, 3, 4] or [B, S, 3, 4] with S ≥ 2"
        )
    errors = [relative_pose_errors(p, g, sign_ambiguity) for p, g in zip(pred, gt)]
    rot = np.concatenate([e[0] for e in errors])
    trans = np.concatenate([e[1] for e in errors])
    return pose_metrics_from_errors(rot, trans, thresholds, auc_threshold)
