"""Numerical safety: every loss (reconstruction, ``L_MD`` of Vid-LLM Eq. 9, distillation of
Eq. 5–7, VL) on empty masks, zero targets and zero proposals gives finite values *and* finite
gradients; the scale alignment degrades gracefully with few valid frames."""

from __future__ import annotations

import math

import pytest
import torch

from recon.alignment import real_scale_alignment
from recon.config import ReconLossConfig
from recon.losses import ReconLoss, camera_loss, depth_loss, metric_depth_loss, point_loss
from vidllm.training.distill import (
    distillation_loss,
    geometry_distill_loss,
    semantic_distill_loss,
    structural_consistency_loss,
)
from vl.config import VLConfig
from vl.grounding_head import GroundingHead
from vl.losses import combine_vl_losses

B, S, H, W = 1, 3, 8, 10


def _finite_with_finite_grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> None:
    assert loss.ndim == 0 and torch.isfinite(loss), loss
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, retain_graph=True)
    for g in grads:
        assert g is None or torch.isfinite(g).all(), g


def _gt_depth(kind: str) -> torch.Tensor:
    depth = torch.rand(B, S, H, W) * 3 + 0.5
    if kind == "zero":
        return torch.zeros_like(depth)
    if kind == "nan":
        return torch.full_like(depth, float("nan"))
    if kind == "inf":
        return torch.full_like(depth, float("inf"))
    if kind == "mixed":  # one frame all invalid, one with a single valid pixel, one with non-finite holes
        depth[:, 0] = 0
        depth[:, 1] = 0
        depth[:, 1, 3, 4] = 2.0
        depth[:, 2, :2] = float("nan")
        depth[:, 2, 2:4] = float("-inf")
        return depth
    return depth


DEPTH_KINDS = ["zero", "nan", "inf", "mixed"]


# ----------------------------------------------------------------------------- recon.losses
@pytest.mark.parametrize("kind", DEPTH_KINDS)
def test_recon_loss_on_invalid_depth(kind):
    pred_depth = (torch.rand(B, S, H, W) + 0.5).requires_grad_()
    conf = (1 + torch.rand(B, S, H, W)).requires_grad_()
    poses = [torch.randn(B, S, 9, requires_grad=True) for _ in range(2)]
    extr = torch.eye(3, 4).expand(B, S, 3, 4).clone()
    extr[:, 1:, 0, 3] = 0.2
    intr = torch.tensor([[8.0, 0, 5], [0, 8.0, 4], [0, 0, 1]]).expand(B, S, 3, 3).clone()
    loss_fn = ReconLoss(ReconLossConfig(point_weight=1.0))
    out = loss_fn(
        {"pose_enc_list": poses, "depth": pred_depth, "depth_conf": conf},
        {"extrinsics": extr, "intrinsics": intr, "depth": _gt_depth(kind)},
    )
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    _finite_with_finite_grads(out["loss"], [pred_depth, conf, *poses])


@pytest.mark.parametrize("kind", DEPTH_KINDS)
def test_depth_point_and_metric_losses_on_invalid_depth(kind):
    gt = _gt_depth(kind)
    valid = torch.isfinite(gt) & (gt > 0)
    pred = (torch.rand(B, S, H, W) + 0.5).requires_grad_()
    conf = (1 + torch.rand(B, S, H, W)).requires_grad_()
    _finite_with_finite_grads(depth_loss(pred, conf, gt)["loss_depth"], [pred, conf])
    _finite_with_finite_grads(metric_depth_loss(pred, gt), [pred])
    _finite_with_finite_grads(metric_depth_loss(pred, gt, alpha=0.0), [pred])
    points = (torch.rand(B, S, H, W, 3)).requires_grad_()
    gt_points = torch.where(valid[..., None], torch.rand(B, S, H, W, 3), torch.full((B, S, H, W, 3), float("nan")))
    _finite_with_finite_grads(point_loss(points, conf, gt_points, valid)["loss_point"], [points, conf])


def test_metric_depth_loss_with_non_finite_predictions():
    pred = torch.rand(B, S, H, W) + 0.5
    pred[0, 0] = float("nan")
    pred[0, 1] = 0.0  # log(0 + eps) is finite but large; must not explode gradients elsewhere
    pred[0, 2, 0] = float("inf")
    pred.requires_grad_()
    gt = torch.rand(B, S, H, W) + 0.5
    _finite_with_finite_grads(metric_depth_loss(pred, gt), [pred])


def test_camera_loss_with_no_valid_frame_and_one_valid_frame():
    preds = [torch.randn(2, S, 9, requires_grad=True)]
    gt = torch.randn(2, S, 9)
    for mask in (torch.zeros(2, S, dtype=torch.bool), torch.tensor([[True, False, False], [False, False, False]])):
        _finite_with_finite_grads(camera_loss(preds, gt, mask)["loss_camera"], preds)


# ----------------------------------------------------------------------------- stage-1 distillation
@pytest.mark.parametrize("case", ["zero_student", "zero_teacher", "identical", "huge"])
def test_distillation_losses_on_degenerate_features(case):
    n, p, c = 2, 6, 8
    sg, sl = torch.randn(n, p, c), torch.randn(n, p, c)
    tg, tl = torch.randn(n, p, c), torch.randn(n, 4, c)
    if case == "zero_student":
        sg, sl = torch.zeros_like(sg), torch.zeros_like(sl)
    elif case == "zero_teacher":
        tg, tl = torch.zeros_like(tg), torch.zeros_like(tl)
    elif case == "identical":
        tg = sg.clone()
    else:
        sg, sl = sg * 1e30, sl * 1e30
    sg.requires_grad_()
    sl.requires_grad_()
    out = distillation_loss(sg, sl, sg, sl, tg, tl, student_hw=(2, 3), teacher_lang_hw=(2, 2))
    for name in ("loss", "geo", "lang", "sc"):
        assert torch.isfinite(out[name]), (name, out[name])
    _finite_with_finite_grads(out["loss"], [sg, sl])
    _finite_with_finite_grads(geometry_distill_loss(sg, tg), [sg])
    _finite_with_finite_grads(semantic_distill_loss(sl, tl), [sl])
    _finite_with_finite_grads(structural_consistency_loss(sg, sl, tg, tg), [sg, sl])


def test_distillation_rejects_non_finite_lambda():
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="lambda_sc"):
        distillation_loss(x, x, x, x, x, x, (2, 2), (2, 2), lambda_sc=math.nan)


# ----------------------------------------------------------------------------- grounding / VL
def test_regression_loss_with_zero_targets_everywhere():
    head = GroundingHead(hidden_dim=16, token_dim=8, max_targets=3)
    h = torch.randn(2, 16, requires_grad=True)
    boxes, logits = head.regress(h, anchor=torch.zeros(2, 3))
    out = head.regression_loss(boxes, logits, [torch.zeros(0, 6), torch.zeros(0, 6)])
    assert out["l1"].item() == 0 and out["giou"].item() == 0
    total = sum(out.values())
    _finite_with_finite_grads(total, [h])


def test_regression_loss_with_degenerate_target_boxes():
    head = GroundingHead(hidden_dim=16, token_dim=8, max_targets=2)
    h = torch.randn(1, 16, requires_grad=True)
    boxes, logits = head.regress(h, anchor=torch.zeros(1, 3))
    flat = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]])  # zero-volume GT boxes
    out = head.regression_loss(boxes, logits, [flat])
    _finite_with_finite_grads(sum(out.values()), [h])


def _proposal_inputs(q):
    head = GroundingHead(hidden_dim=16, token_dim=8)
    h = torch.randn(2, 16, requires_grad=True)
    tokens = torch.randn(2, 5, 8, requires_grad=True)
    points, mask = torch.rand(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    proposals = torch.cat([torch.rand(2, q, 3), torch.rand(2, q, 3) * 0.5 + 0.1], dim=-1)
    return head, h, tokens, points, mask, proposals


@pytest.mark.parametrize(
    "q, positives, pmask, token_mask",
    [
        (0, None, None, True),  # zero proposals
        (3, "none", None, True),  # proposals but no positive
        (3, "some", "all_padding", True),  # every proposal is padding
        (3, "some", None, False),  # no valid 3D token to pool
    ],
)
def test_proposal_loss_edge_cases(q, positives, pmask, token_mask):
    head, h, tokens, points, mask, proposals = _proposal_inputs(q)
    if not token_mask:
        mask = torch.zeros_like(mask)
    proposal_mask = (
        torch.zeros(2, q, dtype=torch.bool) if pmask == "all_padding" else torch.ones(2, q, dtype=torch.bool)
    )
    logits = head.score_proposals(h, tokens, points, mask, proposals, proposal_mask)
    assert logits.shape == (2, q + 1) and torch.isfinite(logits[:, -1]).all()
    pos = torch.zeros(2, q, dtype=torch.bool)
    if positives == "some":
        pos[0, 0] = True
        pos = pos & proposal_mask  # padding is never a positive
    loss = head.proposal_loss(logits, pos)
    _finite_with_finite_grads(loss, [h, tokens])


def test_combined_vl_loss_with_every_grounding_term_zero():
    lm = torch.tensor(1.5, requires_grad=True)
    zeros = {k: torch.zeros((), requires_grad=True) for k in ("l1", "giou", "objectness", "proposal")}
    out = combine_vl_losses(lm, zeros, VLConfig())
    _finite_with_finite_grads(out["loss"], [lm, *zeros.values()])
    out = combine_vl_losses(lm, {}, VLConfig())
    assert torch.isfinite(out["loss"])


# ----------------------------------------------------------------------------- scale alignment
def test_alignment_with_zero_valid_pixels_is_identity_scale():
    rel = torch.rand(2, 4, H, W) + 0.5
    res = real_scale_alignment(rel, torch.zeros_like(rel), torch.ones_like(rel))
    assert res.valid.tolist() == [False, False] and res.scale.tolist() == [1.0, 1.0]
    res = real_scale_alignment(rel, torch.full_like(rel, float("nan")), torch.full_like(rel, float("inf")))
    assert torch.isfinite(res.scale).all() and res.scale.tolist() == [1.0, 1.0]


def test_alignment_with_one_valid_frame_uses_that_frame():
    rel = torch.rand(1, 20, H, W) + 0.5
    metric = torch.zeros_like(rel)
    metric[0, 13] = rel[0, 13] * 2.5  # the only frame with metric depth
    res = real_scale_alignment(rel, metric, 1 + torch.rand_like(rel), num_frames=20)
    assert res.valid.tolist() == [True] and res.frame_valid[0].sum().item() == 1
    torch.testing.assert_close(res.scale, torch.tensor([2.5], dtype=res.scale.dtype), rtol=1e-6, atol=0)


def test_alignment_with_a_single_frame_clip_and_few_pixels():
    rel = torch.rand(1, 1, H, W) + 0.5
    metric = torch.zeros_like(rel)
    metric[0, 0, 0, :5] = rel[0, 0, 0, :5] * 4.0  # 5 valid pixels < min_valid_pixels (16): degenerate
    res = real_scale_alignment(rel, metric)
    assert res.valid.tolist() == [False] and res.scale.item() == 1.0
    res = real_scale_alignment(rel, metric, min_valid_pixels=5)
    assert res.valid.tolist() == [True] and res.scale.item() == pytest.approx(4.0)
