"""Reconstruction losses (VGGT-style) and the metric-depth loss L_MD (paper Eq. 9).

Every loss is computed in float32 (autocast off), ignores invalid pixels/frames and returns an
exact zero that still carries a gradient when nothing is valid — never NaN. Masks are applied with
``torch.where`` and masked sums divided by ``max(count, 1)`` (no boolean indexing, no ``.item()``
or Python branch on tensor values), so the losses never wait on the device.

Notation: valid pixel set ``Ω`` (GT depth finite and > 0, inside the optional mask), ``|Ω|``
its size, clamp ``κ`` (``ReconLossConfig.residual_clamp``, 100), ``γ``/``α``
(``conf_gamma``/``conf_alpha``), confidences ``c > 0``.

Camera loss (:func:`camera_loss`), stages ``i = 0..n−1`` of the refinement, ``w_i = δ^(n−1−i)``
(``δ = camera_decay`` 0.6), means over valid frames and components of ``min(|·|, κ)``::

    L_T = (1/n) Σ_i w_i · mean|t̂_i − t|,   L_R = (1/n) Σ_i w_i · mean|q̂_i − q|,
    L_FoV = (1/n) Σ_i w_i · mean|f̂_i − f|,  L_cam = L_T + L_R + λ_FoV · L_FoV   (λ_FoV = 0.5)

Auxiliary relative-pose term (:func:`relative_pose_loss`, ``recon.loss.relative_pose_weight``; only
with the patch-grid relative-pose module of ``recon.camera_head.relative_pose``), on that module's
own prediction ``p̂ = [t̂, q̂]`` against the first seven entries of the GT pose encoding::

    L_rel = mean_valid-frames,components min(|p̂ − [t, q]|, κ)

Depth / point-map regression (:func:`regression_loss`) with residual
``r_i = min(‖x̂_i − x_i‖₂, κ)`` (the absolute error for depth)::

    L_conf = mean_Ω (γ·r·c − α·log c),     L_reg = mean_Ω r

Multi-scale gradient term (:func:`gradient_loss_multiscale`), VGGT's "gradient of the
confidence-weighted depth error": for scales ``s = 0..S−1`` subsample every map with stride
``2^s`` (``x[::2^s, ::2^s]``); with the masked error ``e = (x̂ − x)·1_Ω`` and each horizontally
or vertically adjacent pixel pair ``(j, k)`` (``k`` right of / below ``j``) with both pixels in
``Ω``, ``g_jk = mean_channels min(|e_k − e_j|, κ)``::

    G_s = Σ_pairs (γ·c_k·g_jk − α·log c_k) / |Ω_s|,      L_grad = (1/S) Σ_s G_s

(``|Ω_s|`` = valid pixels at scale ``s`` over the whole batch; ``G_s = 0`` when it is 0; without
confidence the pair term is ``g_jk``). Unlike VGGT's code, the ``−α·log c`` term is restricted to
valid pairs, so confidences of invalid pixels are not pushed up without bound.

Depth loss: ``L_depth = L_conf + L_reg + λ_grad·L_grad`` (:func:`depth_loss`); point-map loss
the same on world points (:func:`point_loss`).

Metric-depth loss (:func:`metric_depth_loss`), per image over its ``K`` valid pixels, with
``e_i = log(d̂_i + ε) − log(d_i + ε)`` and ``b = mean(e)``::

    L_MD = b² + (1/K) Σ_i (e_i − b)² / (1 + α|e_i − b|)

averaged over images with ``K > 0``. With ``α = 0`` it equals ``mean(e²)`` (``b² + var``).

GT normalisation (:func:`normalize_gt_scene`): extrinsics re-expressed relative to frame 0
(``E'_j = E_j · E_0⁻¹``, so frame 0 is the identity), then depth, translations and world points
are divided by the mean distance to the origin of the valid world points of the clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from recon.config import ReconLossConfig
from recon.geometry import (
    closed_form_inverse_se3,
    depth_to_world_points,
    extri_intri_to_pose_encoding,
    pose_encoding_to_extri_intri,
    to_homogeneous,
)

__all__ = [
    "valid_depth_mask",
    "zero_with_grad",
    "camera_loss",
    "relative_pose_loss",
    "regression_loss",
    "gradient_loss_multiscale",
    "depth_loss",
    "point_loss",
    "metric_depth_loss",
    "normalize_gt_scene",
    "points_from_prediction",
    "ReconLoss",
]


def zero_with_grad(*tensors: Tensor) -> Tensor:
    """A float32 scalar 0 connected to the autograd graph of ``tensors`` (for empty masks)."""
    total = torch.zeros((), dtype=torch.float32, device=tensors[0].device)
    for t in tensors:
        if t is not None and t.is_floating_point():
            total = total + 0.0 * torch.nan_to_num(t.float(), nan=0.0, posinf=0.0, neginf=0.0).sum()
    return total


def valid_depth_mask(gt_depth: Tensor, mask: Tensor | None = None) -> Tensor:
    """Valid GT pixels: finite and > 0 (and inside ``mask``). ``[..., H, W]`` bool."""
    valid = torch.isfinite(gt_depth) & (gt_depth > 0)
    if mask is not None:
        if mask.shape != gt_depth.shape:
            raise ValueError(f"losses: mask {tuple(mask.shape)} must match gt depth {tuple(gt_depth.shape)}")
        valid = valid & mask.bool()
    return valid


def _fp32(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


# --------------------------------------------------------------------------- camera
def camera_loss(
    pred_pose_encs: Sequence[Tensor],
    gt_pose_enc: Tensor,
    frame_mask: Tensor | None = None,
    decay: float = 0.6,
    fov_weight: float = 0.5,
    clamp: float = 100.0,
) -> dict[str, Tensor]:
    """L1 camera loss over refinement stages (see module docstring).

    Args:
        pred_pose_encs: ``n`` stage predictions ``[B, S, 9]`` (last = final).
        gt_pose_enc: ``[B, S, 9]``.
        frame_mask: optional ``[B, S]`` bool of frames to supervise.
        decay: ``δ``; stage ``i`` weighs ``δ^(n−1−i)``.
        fov_weight: weight of ``L_FoV``.
        clamp: per-element residual clamp.
    Returns:
        dict ``loss_camera``, ``loss_T``, ``loss_R``, ``loss_FoV`` (float32 scalars).
    """
    if len(pred_pose_encs) == 0:
        raise ValueError("camera_loss: pred_pose_encs is empty; expected one [B, S, 9] tensor per refinement stage")
    for p in pred_pose_encs:
        if p.shape != gt_pose_enc.shape or p.shape[-1] != 9:
            raise ValueError(
                f"camera_loss: stage prediction {tuple(p.shape)} must match gt pose encoding {tuple(gt_pose_enc.shape)} (last dim 9)"
            )
    device = gt_pose_enc.device
    with _fp32(device):
        if frame_mask is None:
            frame_mask = torch.ones(gt_pose_enc.shape[:-1], dtype=torch.bool, device=device)
        frame_mask = frame_mask.bool() & torch.isfinite(gt_pose_enc).all(dim=-1)
        # masked sums instead of boolean indexing: no host–device synchronisation; invalid frames
        # contribute exact zeros (and zero gradients, NaN-safe), an empty mask gives 0
        keep = frame_mask[..., None]
        gt = torch.where(keep, gt_pose_enc.float(), 0.0)
        preds = [torch.where(keep, p.float(), 0.0) for p in pred_pose_encs]
        frames = frame_mask.sum().clamp_min(1).float()
        n = len(pred_pose_encs)
        terms = {"loss_T": slice(0, 3), "loss_R": slice(3, 7), "loss_FoV": slice(7, 9)}
        out = {}
        for name, sl in terms.items():
            total = torch.zeros((), dtype=torch.float32, device=device)
            for i, pred in enumerate(preds):
                resid = (pred[..., sl] - gt[..., sl]).abs().clamp(max=clamp)
                total = total + decay ** (n - 1 - i) * (resid.sum() / (frames * (sl.stop - sl.start)))
            out[name] = total / n
        out["loss_camera"] = out["loss_T"] + out["loss_R"] + fov_weight * out["loss_FoV"]
    return out


def relative_pose_loss(
    pred: Tensor, gt_pose_enc: Tensor, frame_mask: Tensor | None = None, clamp: float = 100.0
) -> Tensor:
    """``L_rel``: L1 of the relative-pose module's ``[t, quat]`` against the GT pose encoding (see module docstring).

    Args:
        pred: ``[B, S, 7]``; gt_pose_enc: ``[B, S, 9]`` (its first 7 entries are compared).
        frame_mask: optional ``[B, S]`` bool of frames to supervise.
        clamp: per-element residual clamp.
    Returns:
        float32 scalar.
    """
    if pred.shape[:-1] != gt_pose_enc.shape[:-1] or pred.shape[-1] != 7 or gt_pose_enc.shape[-1] != 9:
        raise ValueError(
            f"relative_pose_loss: prediction {tuple(pred.shape)} must be [B, S, 7] beside gt pose encoding {tuple(gt_pose_enc.shape)}"
        )
    with _fp32(pred.device):
        gt = gt_pose_enc[..., :7].float()
        mask = torch.isfinite(gt).all(dim=-1)
        if frame_mask is not None:
            mask = mask & frame_mask.bool()
        keep = mask[..., None]
        resid = (torch.where(keep, pred.float(), 0.0) - torch.where(keep, gt, 0.0)).abs().clamp(max=clamp)
        return resid.sum() / (mask.sum().clamp_min(1).float() * 7)


# --------------------------------------------------------------------------- depth / points
def gradient_loss_multiscale(
    pred: Tensor,
    gt: Tensor,
    valid: Tensor,
    conf: Tensor | None = None,
    scales: int = 3,
    gamma: float = 1.0,
    alpha: float = 0.2,
    clamp: float = 100.0,
) -> Tensor:
    """Multi-scale gradient term ``L_grad`` (see module docstring).

    Args:
        pred, gt: ``[N, H, W, C]``; valid: ``[N, H, W]`` bool; conf: ``[N, H, W]`` or None.
    Returns:
        float32 scalar.
    """
    total = zero_with_grad(pred, conf) if conf is not None else zero_with_grad(pred)
    for s in range(scales):
        step = 2**s
        p = pred[:, ::step, ::step].float()
        g = gt[:, ::step, ::step].float()
        m = valid[:, ::step, ::step]
        count = m.sum()  # a scale with no valid pixel adds 0 (no host sync on the count)
        err = torch.where(m[..., None], p - torch.where(m[..., None], g, torch.zeros_like(g)), torch.zeros_like(p))
        level = torch.zeros((), dtype=torch.float32, device=pred.device)
        for dim in (1, 2):  # rows (vertical pairs), columns (horizontal pairs)
            length = err.shape[dim]
            if length < 2:
                continue
            e0, e1 = err.narrow(dim, 0, length - 1), err.narrow(dim, 1, length - 1)
            pair = m.narrow(dim, 0, length - 1) & m.narrow(dim, 1, length - 1)
            grad = (e1 - e0).abs().clamp(max=clamp).mean(dim=-1)
            if conf is not None:
                c = conf[:, ::step, ::step].float().narrow(dim, 1, length - 1)
                c = torch.where(pair, c, torch.ones_like(c))
                term = gamma * grad * c - alpha * torch.log(c)
            else:
                term = grad
            level = level + torch.where(pair, term, torch.zeros_like(term)).sum()
        total = total + level / count.clamp_min(1)
    return total / scales


def regression_loss(
    pred: Tensor,
    gt: Tensor,
    valid: Tensor,
    conf: Tensor | None = None,
    gamma: float = 1.0,
    alpha: float = 0.2,
    gradient_scales: int = 3,
    clamp: float = 100.0,
) -> dict[str, Tensor]:
    """Confidence-weighted, plain and gradient regression terms on ``[N, H, W, C]`` maps.

    Args:
        pred, gt: ``[N, H, W, C]``; valid ``[N, H, W]`` bool; conf ``[N, H, W]`` (> 0) or None.
        gradient_scales: ``S`` of the gradient term (0 disables it).
    Returns:
        dict ``loss_conf``, ``loss_reg``, ``loss_grad`` (float32 scalars; ``loss_conf`` is the plain
        mean residual when ``conf`` is None).
    """
    if pred.shape != gt.shape or pred.shape[:-1] != valid.shape:
        raise ValueError(
            f"regression_loss: pred {tuple(pred.shape)}, gt {tuple(gt.shape)} and mask {tuple(valid.shape)} disagree"
        )
    if conf is not None and conf.shape != valid.shape:
        raise ValueError(f"regression_loss: conf {tuple(conf.shape)} must match mask {tuple(valid.shape)}")
    with _fp32(pred.device):
        valid = valid & torch.isfinite(gt).all(dim=-1)
        # masked means instead of boolean indexing (no host–device synchronisation): invalid pixels
        # give exact zeros and zero gradients (NaN-safe); an empty mask gives 0 with a gradient
        count = valid.sum().clamp_min(1).float()
        keep = valid[..., None]
        resid = (
            (torch.where(keep, pred.float(), 0.0) - torch.where(keep, gt.float(), 0.0)).norm(dim=-1).clamp(max=clamp)
        )
        loss_reg = resid.sum() / count
        if conf is not None:
            c = torch.where(valid, conf.float(), 1.0)
            loss_conf = torch.where(valid, gamma * resid * c - alpha * torch.log(c), 0.0).sum() / count
        else:
            loss_conf = loss_reg
        if gradient_scales > 0:
            loss_grad = gradient_loss_multiscale(pred, gt, valid, conf, gradient_scales, gamma, alpha, clamp)
        else:
            loss_grad = zero_with_grad(pred)
    return {"loss_conf": loss_conf, "loss_reg": loss_reg, "loss_grad": loss_grad}


def depth_loss(
    pred_depth: Tensor,
    pred_conf: Tensor | None,
    gt_depth: Tensor,
    mask: Tensor | None = None,
    gamma: float = 1.0,
    alpha: float = 0.2,
    gradient_weight: float = 1.0,
    gradient_scales: int = 3,
    clamp: float = 100.0,
) -> dict[str, Tensor]:
    """VGGT depth loss ``L_conf + L_reg + λ_grad·L_grad``.

    Args:
        pred_depth, gt_depth: ``[B, S, H, W]`` (GT 0 / non-finite = invalid); pred_conf ``[B, S, H, W]``.
        mask: optional ``[B, S, H, W]`` bool.
    Returns:
        dict ``loss_depth`` (total), ``loss_conf_depth``, ``loss_reg_depth``, ``loss_grad_depth``.
    """
    if pred_depth.shape != gt_depth.shape:
        raise ValueError(
            f"depth_loss: pred depth {tuple(pred_depth.shape)} must match gt depth {tuple(gt_depth.shape)}"
        )
    h, w = pred_depth.shape[-2:]
    valid = valid_depth_mask(gt_depth, mask).reshape(-1, h, w)
    conf = None if pred_conf is None else pred_conf.reshape(-1, h, w)
    terms = regression_loss(
        pred_depth.reshape(-1, h, w, 1),
        gt_depth.reshape(-1, h, w, 1),
        valid,
        conf,
        gamma,
        alpha,
        gradient_scales if gradient_weight > 0 else 0,
        clamp,
    )
    total = terms["loss_conf"] + terms["loss_reg"] + gradient_weight * terms["loss_grad"]
    return {
        "loss_depth": total,
        "loss_conf_depth": terms["loss_conf"],
        "loss_reg_depth": terms["loss_reg"],
        "loss_grad_depth": terms["loss_grad"],
    }


def point_loss(
    pred_points: Tensor,
    pred_conf: Tensor | None,
    gt_points: Tensor,
    valid: Tensor,
    gamma: float = 1.0,
    alpha: float = 0.2,
    gradient_weight: float = 1.0,
    gradient_scales: int = 3,
    clamp: float = 100.0,
) -> dict[str, Tensor]:
    """Point-map loss (Euclidean residual), same structure as :func:`depth_loss`.

    Args:
        pred_points, gt_points: ``[B, S, H, W, 3]``; pred_conf ``[B, S, H, W]`` or None; valid ``[B, S, H, W]`` bool.
    Returns:
        dict ``loss_point`` (total), ``loss_conf_point``, ``loss_reg_point``, ``loss_grad_point``.
    """
    if pred_points.shape != gt_points.shape or pred_points.shape[-1] != 3 or pred_points.shape[:-1] != valid.shape:
        raise ValueError(
            f"point_loss: pred {tuple(pred_points.shape)}, gt {tuple(gt_points.shape)}, mask {tuple(valid.shape)} disagree"
        )
    h, w = valid.shape[-2:]
    conf = None if pred_conf is None else pred_conf.reshape(-1, h, w)
    terms = regression_loss(
        pred_points.reshape(-1, h, w, 3),
        gt_points.reshape(-1, h, w, 3),
        valid.reshape(-1, h, w).bool(),
        conf,
        gamma,
        alpha,
        gradient_scales if gradient_weight > 0 else 0,
        clamp,
    )
    total = terms["loss_conf"] + terms["loss_reg"] + gradient_weight * terms["loss_grad"]
    return {
        "loss_point": total,
        "loss_conf_point": terms["loss_conf"],
        "loss_reg_point": terms["loss_reg"],
        "loss_grad_point": terms["loss_grad"],
    }


# --------------------------------------------------------------------------- metric depth (Eq. 9)
def metric_depth_loss(
    pred_depth: Tensor, gt_depth: Tensor, mask: Tensor | None = None, alpha: float = 5.0, eps: float = 1e-6
) -> Tensor:
    """``L_MD`` of paper Eq. 9 per image, averaged over images with valid pixels (float32).

    Args:
        pred_depth, gt_depth: ``[..., H, W]`` metres (GT 0 / non-finite = invalid).
        mask: optional ``[..., H, W]`` bool.
        alpha: robustness ``α`` (0 gives ``mean(e²)``).
        eps: ``ε`` inside the logs.
    Returns:
        float32 scalar.
    """
    if pred_depth.shape != gt_depth.shape:
        raise ValueError(f"metric_depth_loss: pred {tuple(pred_depth.shape)} must match gt {tuple(gt_depth.shape)}")
    h, w = gt_depth.shape[-2:]
    with _fp32(pred_depth.device):
        pred = pred_depth.float().reshape(-1, h * w)
        gt = gt_depth.float().reshape(-1, h * w)
        valid = valid_depth_mask(gt_depth, mask).reshape(-1, h * w) & torch.isfinite(pred) & (pred + eps > 0)
        count = valid.sum(dim=1)
        has = count > 0
        one = torch.ones_like(pred)
        e = torch.log(torch.where(valid, pred, one) + eps) - torch.log(torch.where(valid, gt, one) + eps)
        e = torch.where(valid, e, torch.zeros_like(e))
        k = count.clamp_min(1).float()
        b = e.sum(dim=1) / k
        dev = torch.where(valid, e - b[:, None], torch.zeros_like(e))
        robust = (dev.square() / (1 + alpha * dev.abs())).sum(dim=1) / k
        per_image = b.square() + robust
        # mean over images with valid pixels, without a host sync (0 when there is none)
        return torch.where(has, per_image, 0.0).sum() / has.sum().clamp_min(1).float()


# --------------------------------------------------------------------------- GT normalisation
@torch.no_grad()
def normalize_gt_scene(
    extrinsics: Tensor, intrinsics: Tensor, depth: Tensor, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """Normalise a GT clip: frame 0 becomes the identity, mean valid-point distance becomes 1.

    Args:
        extrinsics: ``[B, S, 3, 4]`` world→camera; intrinsics ``[B, S, 3, 3]``; depth ``[B, S, H, W]``.
        mask: optional ``[B, S, H, W]`` bool.
    Returns:
        dict ``extrinsics`` ``[B, S, 3, 4]``, ``depth``, ``world_points`` ``[B, S, H, W, 3]``,
        ``valid`` ``[B, S, H, W]`` bool and ``scale`` ``[B]`` (the divisor; 1 where a clip has no
        valid point).
    """
    if extrinsics.ndim != 4 or extrinsics.shape[-2:] != (3, 4):
        raise ValueError(f"normalize_gt_scene: extrinsics must be [B, S, 3, 4], got {tuple(extrinsics.shape)}")
    valid = valid_depth_mask(depth, mask)
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    first_inv = closed_form_inverse_se3(to_homogeneous(extrinsics[:, :1]))
    rel = (to_homogeneous(extrinsics) @ first_inv)[..., :3, :]
    points = depth_to_world_points(depth, rel, intrinsics)
    dist = torch.where(valid, points.norm(dim=-1), torch.zeros_like(depth))
    count = valid.flatten(1).sum(dim=1)
    mean_dist = dist.flatten(1).sum(dim=1) / count.clamp_min(1)
    scale = torch.where((count > 0) & (mean_dist > 1e-12), mean_dist, torch.ones_like(mean_dist))
    s = scale.view(-1, 1, 1, 1)
    rel = torch.cat([rel[..., :3], rel[..., 3:] / s], dim=-1)
    return {
        "extrinsics": rel,
        "depth": depth / s,
        "world_points": points / s[..., None],
        "valid": valid,
        "scale": scale,
    }


def points_from_prediction(depth: Tensor, pose_enc: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """World points ``[B, S, H, W, 3]`` from predicted depth ``[B, S, H, W]`` and pose encoding ``[B, S, 9]``."""
    extrinsics, intrinsics = pose_encoding_to_extri_intri(pose_enc, image_hw)
    return depth_to_world_points(depth, extrinsics, intrinsics)


class ReconLoss(nn.Module):
    """The reconstruction-task loss of stage 2 (camera + depth + optional point map), from :class:`ReconLossConfig`.

    ``forward(pred, gt)`` with ``pred = {pose_enc_list: [n × [B,S,9]], depth [B,S,H,W], depth_conf [B,S,H,W]}``
    and ``gt = {extrinsics [B,S,3,4], intrinsics [B,S,3,3], depth [B,S,H,W], (mask [B,S,H,W])}``;
    GT is normalised with :func:`normalize_gt_scene` first. Returns a dict with ``loss`` (the
    weighted total) and every term. Frames with no valid GT depth are excluded from the camera loss.
    """

    def __init__(self, cfg: ReconLossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ReconLossConfig()

    def forward(self, pred: dict, gt: dict) -> dict[str, Tensor]:
        cfg = self.cfg
        depth = pred["depth"]
        image_hw = tuple(depth.shape[-2:])
        norm = normalize_gt_scene(gt["extrinsics"], gt["intrinsics"], gt["depth"], gt.get("mask"))
        gt_pose = extri_intri_to_pose_encoding(norm["extrinsics"], gt["intrinsics"], image_hw)
        frame_mask = norm["valid"].flatten(2).any(dim=-1)
        out = camera_loss(
            pred["pose_enc_list"], gt_pose, frame_mask, cfg.camera_decay, cfg.fov_weight, cfg.residual_clamp
        )
        out.update(
            depth_loss(
                depth,
                pred.get("depth_conf"),
                norm["depth"],
                norm["valid"],
                cfg.conf_gamma,
                cfg.conf_alpha,
                cfg.gradient_weight,
                cfg.gradient_scales,
                cfg.residual_clamp,
            )
        )
        total = cfg.camera_weight * out["loss_camera"] + cfg.depth_weight * out["loss_depth"]
        if cfg.relative_pose_weight > 0:
            if "relative_pose_enc" not in pred:
                raise ValueError(
                    "ReconLoss: recon.loss.relative_pose_weight > 0 needs the model's relative_pose_enc output; "
                    "set recon.camera_head.relative_pose.enabled: true"
                )
            out["loss_relative_pose"] = relative_pose_loss(
                pred["relative_pose_enc"], gt_pose, frame_mask, cfg.residual_clamp
            )
            total = total + cfg.relative_pose_weight * out["loss_relative_pose"]
        if cfg.point_weight > 0:
            points = pred.get("world_points")
            if points is None:
                points = points_from_prediction(depth, pred["pose_enc_list"][-1], image_hw)
            conf = pred.get("world_points_conf", pred.get("depth_conf"))
            out.update(
                point_loss(
                    points,
                    conf,
                    norm["world_points"],
                    norm["valid"],
                    cfg.conf_gamma,
                    cfg.conf_alpha,
                    cfg.gradient_weight,
                    cfg.gradient_scales,
                    cfg.residual_clamp,
                )
            )
            total = total + cfg.point_weight * out["loss_point"]
        out["loss"] = total
        return out
