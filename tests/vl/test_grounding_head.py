"""3D GIoU, Hungarian matching, the grounding head's losses and frame mapping."""

import math

import numpy as np
import pytest
import torch

from vl.boxes import giou_3d, giou_3d_pairwise, hungarian_match
from vl.grounding_head import (
    GroundingHead,
    boxes_in_model_frame,
    boxes_in_world_frame,
    points_in_world_frame,
    pool_tokens_in_boxes,
)


def _giou_numpy(a, b):
    alo, ahi = a[:3] - a[3:] / 2, a[:3] + a[3:] / 2
    blo, bhi = b[:3] - b[3:] / 2, b[:3] + b[3:] / 2
    inter = np.prod(np.clip(np.minimum(ahi, bhi) - np.maximum(alo, blo), 0, None))
    union = np.prod(a[3:]) + np.prod(b[3:]) - inter
    enc = np.prod(np.maximum(ahi, bhi) - np.minimum(alo, blo))
    return inter / union - (enc - union) / enc


def test_giou_identical_disjoint_and_reference():
    box = torch.tensor([1.0, 2.0, 0.5, 1.0, 2.0, 0.5])
    assert giou_3d(box, box).item() == pytest.approx(1.0)
    far = torch.tensor([5.0, 2.0, 0.5, 1.0, 1.0, 1.0])
    assert giou_3d(box, far).item() < 0
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(size=(5, 3)), rng.uniform(0.2, 2, size=(5, 3))], 1)
    b = np.concatenate([rng.normal(size=(4, 3)), rng.uniform(0.2, 2, size=(4, 3))], 1)
    got = giou_3d_pairwise(torch.tensor(a), torch.tensor(b)).numpy()
    ref = np.array([[_giou_numpy(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_hungarian_hand_case():
    cost = torch.tensor([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = hungarian_match(cost)  # optimum: 0->1, 1->0, 2->2 with cost 1 + 2 + 2 = 5
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    rows, cols = hungarian_match(torch.tensor([[5.0, 1.0], [0.5, 3.0], [9.0, 9.0]]))  # 3 preds, 2 targets
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    rows, cols = hungarian_match(torch.zeros(4, 0))
    assert rows.numel() == 0 and cols.numel() == 0


def test_regression_loss_matching_zero_targets_and_perfect_fit():
    head = GroundingHead(hidden_dim=16, token_dim=8, max_targets=3)
    targets = torch.tensor([[0.0, 0, 0, 1, 1, 1], [3.0, 0, 0, 1, 2, 1]])
    pred = torch.tensor([[[3.0, 0, 0, 1, 2, 1], [9.0, 9, 9, 1, 1, 1], [0.0, 0, 0, 1, 1, 1]]])
    logits = torch.tensor([[10.0, -10.0, 10.0]])
    out = head.regression_loss(pred, logits, [targets])
    assert out["l1"].item() == pytest.approx(0.0, abs=1e-6) and out["giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["objectness"].item() < 1e-3
    h = torch.randn(2, 16, requires_grad=True)
    boxes, lg = head.regress(h, anchor=torch.zeros(2, 3))
    assert boxes.shape == (2, 3, 6) and (boxes[..., 3:] > 0).all()
    out = head.regression_loss(boxes, lg, [torch.zeros(0, 6), targets])
    total = sum(out.values())
    assert torch.isfinite(total)
    total.backward()
    assert h.grad is not None
    out0 = head.regression_loss(boxes.detach(), lg.detach(), [torch.zeros(0, 6), torch.zeros(0, 6)])
    assert out0["l1"].item() == 0 and out0["giou"].item() == 0 and torch.isfinite(out0["objectness"])


def test_pool_tokens_in_boxes():
    tokens = torch.tensor([[[1.0], [3.0], [100.0], [7.0]]])
    points = torch.tensor([[[0.0, 0, 0], [0.4, 0, 0], [0.1, 0, 0], [5.0, 5, 5]]])
    mask = torch.tensor([[True, True, False, True]])
    boxes = torch.tensor([[[0.0, 0, 0, 1, 1, 1], [9.0, 9, 9, 1, 1, 1]]])
    feats, counts = pool_tokens_in_boxes(tokens, points, mask, boxes)
    assert counts.tolist() == [[2, 0]]
    assert feats[0, :, 0].tolist() == [2.0, 0.0]


def test_proposal_scoring_and_cross_entropy():
    head = GroundingHead(hidden_dim=16, token_dim=8)
    h = torch.randn(2, 16)
    tokens, points, mask = torch.randn(2, 5, 8), torch.rand(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    props = torch.tensor([[0.5, 0.5, 0.5, 1, 1, 1], [2, 2, 2, 1, 1, 1]]).expand(2, 2, 6)
    pmask = torch.tensor([[True, True], [True, False]])
    logits = head.score_proposals(h, tokens, points, mask, props, pmask)
    assert logits.shape == (2, 3) and torch.isinf(logits[1, 1])
    positives = torch.tensor([[True, True], [False, False]])
    loss = head.proposal_loss(logits, positives)
    lp = torch.log_softmax(logits, -1)
    ref = (-(lp[0, 0] + lp[0, 1]) / 2 - lp[1, 2]) / 2
    torch.testing.assert_close(loss, ref)
    assert head.select(torch.tensor([[0.1, 0.9, 0.2], [0.1, 0.2, 3.0]])).tolist() == [1, -1]
    empty = head.score_proposals(h, tokens, points, mask, torch.zeros(2, 0, 6), torch.zeros(2, 0, dtype=torch.bool))
    assert empty.shape == (2, 1)
    assert torch.isfinite(head.proposal_loss(empty, torch.zeros(2, 0, dtype=torch.bool)))


def test_world_model_frame_mapping_roundtrip():
    a = math.pi / 2
    wfm = torch.tensor(
        [[math.cos(a), -math.sin(a), 0, 1.0], [math.sin(a), math.cos(a), 0, 2.0], [0, 0, 1, 0.5], [0, 0, 0, 1]]
    )
    world = torch.tensor([[1.0, 3.0, 1.5, 2.0, 1.0, 0.5]])
    model = boxes_in_model_frame(world, wfm)
    # hand: p_model = Rᵀ (p_world − t) = Rᵀ (0, 1, 1) = (1, 0, 1); the 90° turn swaps the x/y sizes
    torch.testing.assert_close(model, torch.tensor([[1.0, 0.0, 1.0, 1.0, 2.0, 0.5]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(boxes_in_world_frame(model, wfm), world, atol=1e-6, rtol=0)


def _yaw_pose(deg: float, t=(1.0, 2.0, 0.5)) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor(
        [[math.cos(a), -math.sin(a), 0, t[0]], [math.sin(a), math.cos(a), 0, t[1]], [0, 0, 1, t[2]], [0, 0, 0, 1.0]]
    )


def test_world_frame_pooling_excludes_tokens_outside_the_world_box():
    # a 45° yaw: the world AABB rotated into the model frame is an inflated AABB whose corners hold
    # points that are outside the object's world box; world-frame pooling must drop exactly those
    wfm = _yaw_pose(45.0)
    box_world = torch.tensor([[3.0, -1.0, 1.0, 2.0, 1.0, 1.0]])
    box_model = boxes_in_model_frame(box_world, wfm)
    g = torch.Generator().manual_seed(0)
    lo, hi = box_model[0, :3] - box_model[0, 3:] / 2, box_model[0, :3] + box_model[0, 3:] / 2
    points = lo + (hi - lo) * torch.rand(1, 400, 3, generator=g)  # all inside the inflated model-frame box
    tokens = torch.randn(1, 400, 4, generator=g)
    mask = torch.ones(1, 400, dtype=torch.bool)
    # independent computation: each point into the world with R p + t, then an explicit box test
    r, t = wfm[:3, :3].double(), wfm[:3, 3].double()
    inside = []
    for p in points[0].double():
        w = r @ p + t
        inside.append(bool(((w - box_world[0, :3].double()).abs() <= box_world[0, 3:].double() / 2).all()))
    inside = torch.tensor(inside)
    assert 0 < int(inside.sum()) < 400  # the inflated box really holds outside points
    pts_world = points_in_world_frame(points, wfm[None])
    feats, counts = pool_tokens_in_boxes(tokens, pts_world, mask, box_world[None])
    assert int(counts[0, 0]) == int(inside.sum())
    torch.testing.assert_close(feats[0, 0], tokens[0, inside].mean(0), atol=1e-5, rtol=0)
    _, counts_model = pool_tokens_in_boxes(tokens, points, mask, box_model[None])
    assert int(counts_model[0, 0]) == 400


def test_score_proposals_pools_in_the_world_frame_when_the_pose_is_given():
    torch.manual_seed(0)
    head = GroundingHead(hidden_dim=16, token_dim=8)
    wfm = _yaw_pose(45.0)[None]
    box_world = torch.tensor([[[3.0, -1.0, 1.0, 2.0, 1.0, 1.0]]])
    box_model = boxes_in_model_frame(box_world[0], wfm[0])[None]
    h = torch.randn(1, 16)
    points = box_model[..., :3].expand(1, 2, 3).clone()
    points[0, 1] = (
        box_model[0, 0, :3] + box_model[0, 0, 3:] * 0.49
    )  # a corner of the inflated box: outside the world box
    tokens = torch.randn(1, 2, 8)
    mask = torch.ones(1, 2, dtype=torch.bool)
    world = head.score_proposals(h, tokens, points, mask, box_model, None, box_world, wfm)
    only_centre = head.score_proposals(h, tokens[:, :1], points[:, :1], mask[:, :1], box_model, None, box_world, wfm)
    model = head.score_proposals(h, tokens, points, mask, box_model)
    torch.testing.assert_close(world, only_centre)  # the corner token does not contribute
    assert not torch.allclose(world[:, 0], model[:, 0])  # pooling in the model frame counts it
    with pytest.raises(ValueError, match="both"):
        head.score_proposals(h, tokens, points, mask, box_model, None, box_world, None)
