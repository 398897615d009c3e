"""Grounding head on the ``<ground>`` hidden state (LLaVA-3D-style losses).

(a) **Box regression**: an MLP maps the ``<ground>`` state ``h`` to ``T = max_targets`` box slots
    ``[cx, cy, cz, dx, dy, dz]`` in the model frame (centre = anchor + offset, where the anchor is
    the mean position of the sample's 3D tokens; size = softplus + 1 cm) and an objectness logit
    per slot. Training matches slots to the targets (Hungarian, cost = L1 + (1 − GIoU)) — zero
    targets just push every objectness to 0.
(b) **Proposal scoring**: a proposal's feature is the mean of the 3D patch tokens whose points
    lie inside it plus an MLP embedding of the box (model frame). Containment is tested in the
    aligned world when ``world_from_model`` is known (token points mapped with it, the axis-aligned
    world boxes as given), so a box is never inflated by rotating it into the camera-0 frame; without
    it the boxes are taken as model-frame AABBs; ``score_q = ⟨W_h h, W_f f_q⟩ / √H``, and a
    learnable "no object" vector gives slot ``Q`` (the last logit). Cross-entropy against the
    uniform distribution over positive proposals (the no-object slot when there is none).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon.geometry import closed_form_inverse_se3, to_homogeneous, transform_boxes
from vl.boxes import giou_3d, giou_3d_pairwise, hungarian_match

__all__ = [
    "GroundingHead",
    "boxes_in_model_frame",
    "boxes_in_world_frame",
    "points_in_boxes",
    "points_in_world_frame",
    "pool_tokens_in_boxes",
]

_MIN_SIZE = 0.01


def points_in_boxes(points: Tensor, mask: Tensor, boxes: Tensor, margin: float = 0.0) -> Tensor:
    """Which valid points lie inside each axis-aligned box (inclusive faces).

    Args:
        points: ``[B, M, 3]``; mask: ``[B, M]`` bool; boxes: ``[B, Q, 6]`` ``[cx, cy, cz, dx, dy, dz]`` in the
        points' frame; margin: metres added on every side of each box.
    Returns:
        ``[B, Q, M]`` bool.
    """
    lo = boxes[..., None, :3] - boxes[..., None, 3:6] / 2  # [B, Q, 1, 3]
    hi = boxes[..., None, :3] + boxes[..., None, 3:6] / 2
    if margin:
        lo, hi = lo - margin, hi + margin
    p = points[:, None, :, :]  # [B, 1, M, 3]
    return ((p >= lo) & (p <= hi)).all(-1) & mask[:, None, :]


def pool_tokens_in_boxes(tokens: Tensor, points: Tensor, mask: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the tokens whose points lie inside each box (inclusive faces, :func:`points_in_boxes`).

    Args:
        tokens: ``[B, M, C]``; points: ``[B, M, 3]``; mask: ``[B, M]`` bool; boxes: ``[B, Q, 6]``.
    Returns:
        ``features [B, Q, C]`` (zeros for empty boxes) and ``counts [B, Q]``.
    """
    inside = points_in_boxes(points, mask, boxes)  # [B, Q, M]
    counts = inside.sum(-1)
    feats = inside.to(tokens.dtype) @ tokens / counts.clamp_min(1)[..., None].to(tokens.dtype)
    return feats, counts


def points_in_world_frame(points: Tensor, world_from_model: Tensor) -> Tensor:
    """Model-frame points ``[B, M, 3]`` → aligned world with ``world_from_model`` ``[B, 4, 4]`` (or ``[B, 3, 4]``)."""
    rot = world_from_model[:, :3, :3].to(points.dtype)
    trans = world_from_model[:, :3, 3].to(points.dtype)
    return torch.einsum("bij,bmj->bmi", rot, points) + trans[:, None, :]


def boxes_in_model_frame(boxes_world: Tensor, world_from_model: Tensor) -> Tensor:
    """Aligned-world boxes ``[Q, 6]`` → model frame with ``inv(world_from_model)`` (``[4, 4]``)."""
    return transform_boxes(boxes_world, closed_form_inverse_se3(to_homogeneous(world_from_model)))


def boxes_in_world_frame(boxes_model: Tensor, world_from_model: Tensor) -> Tensor:
    """Model-frame boxes ``[Q, 6]`` → aligned world with ``world_from_model`` (``[4, 4]``)."""
    return transform_boxes(boxes_model, to_homogeneous(world_from_model))


class GroundingHead(nn.Module):
    """Box regression and proposal scoring from the ``<ground>`` hidden state.

    Args:
        hidden_dim: LLM width H (the ``<ground>`` state); token_dim: width C of the 3D tokens;
        max_targets: regressed box slots T.
    """

    def __init__(self, hidden_dim: int, token_dim: int, max_targets: int = 8) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.max_targets = max_targets
        self.regressor = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, max_targets * 7)
        )
        self.box_embed = nn.Sequential(nn.Linear(6, token_dim), nn.GELU(), nn.Linear(token_dim, token_dim))
        self.proposal_proj = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, hidden_dim))
        self.query_proj = nn.Linear(hidden_dim, hidden_dim)
        self.no_object = nn.Parameter(torch.zeros(hidden_dim))

    # ------------------------------------------------------------------ regression
    def regress(self, ground_state: Tensor, anchor: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``h [B, H]`` (+ anchor ``[B, 3]``) → boxes ``[B, T, 6]`` (model frame) and objectness logits ``[B, T]``."""
        raw = (
            self.regressor(ground_state.to(self.no_object.dtype))
            .view(ground_state.shape[0], self.max_targets, 7)
            .float()
        )
        centre = raw[..., :3] + (0 if anchor is None else anchor[:, None, :].float())
        size = F.softplus(raw[..., 3:6]) + _MIN_SIZE
        return torch.cat([centre, size], dim=-1), raw[..., 6]

    def regression_loss(self, boxes: Tensor, logits: Tensor, targets: list[Tensor]) -> dict[str, Tensor]:
        """Hungarian-matched L1 + (1 − GIoU) on boxes and BCE on objectness.

        Args:
            boxes: ``[B, T, 6]``; logits: ``[B, T]``; targets: B tensors ``[N_b, 6]`` (``N_b ≥ 0``).
        Returns:
            ``l1``, ``giou`` (both averaged over all matched targets; 0 if none), ``objectness``.
        """
        if len(targets) != boxes.shape[0]:
            raise ValueError(f"grounding: got {len(targets)} target lists for a batch of {boxes.shape[0]}")
        l1 = boxes.new_zeros(())
        giou = boxes.new_zeros(())
        obj_target = torch.zeros_like(logits)
        matched = 0
        for b, tgt in enumerate(targets):  # per sample: Hungarian matching is a CPU routine
            tgt = tgt.to(boxes).reshape(-1, 6)
            if tgt.shape[0] == 0:
                continue
            cost = torch.cdist(boxes[b], tgt, p=1) + (1 - giou_3d_pairwise(boxes[b], tgt))
            pi, ti = hungarian_match(cost)
            l1 = l1 + (boxes[b, pi] - tgt[ti]).abs().sum(-1).sum()
            giou = giou + (1 - giou_3d(boxes[b, pi], tgt[ti])).sum()
            obj_target[b, pi] = 1.0
            matched += pi.numel()
        denom = max(matched, 1)
        objectness = F.binary_cross_entropy_with_logits(logits, obj_target)
        return {"l1": l1 / denom, "giou": giou / denom, "objectness": objectness}

    # ------------------------------------------------------------------ proposals
    def score_proposals(
        self,
        ground_state: Tensor,
        tokens: Tensor,
        points: Tensor,
        mask: Tensor,
        proposals: Tensor,
        proposal_mask: Tensor | None = None,
        proposals_world: Tensor | None = None,
        world_from_model: Tensor | None = None,
    ) -> Tensor:
        """Logits ``[B, Q + 1]`` of the proposals and (last) the "no object" slot.

        Args:
            ground_state: ``[B, H]``; tokens ``[B, M, C]``, points ``[B, M, 3]``, mask ``[B, M]``: the
            3D tokens (model frame); proposals ``[B, Q, 6]`` model frame (Q may be 0; the box embedding);
            proposal_mask ``[B, Q]`` bool (padding = False → logit −inf); proposals_world ``[B, Q, 6]``
            and world_from_model ``[B, 4, 4]``: the same proposals as aligned-world AABBs and the clip's
            pose; given together, tokens are pooled by containment in the world frame, else in the model frame.
        """
        if (proposals_world is None) != (world_from_model is None):
            raise ValueError(
                "GroundingHead.score_proposals: give both proposals_world and world_from_model, or neither"
            )
        dtype = self.no_object.dtype
        q = self.query_proj(ground_state.to(dtype)).float()  # [B, H]
        if world_from_model is not None:
            if proposals_world.shape != proposals.shape:
                raise ValueError(
                    f"GroundingHead: proposals_world {tuple(proposals_world.shape)} != proposals {tuple(proposals.shape)}"
                )
            pool_points = points_in_world_frame(points.float(), world_from_model.float())
            pooled, _ = pool_tokens_in_boxes(tokens.to(dtype), pool_points, mask, proposals_world.float())
        else:
            pooled, _ = pool_tokens_in_boxes(tokens.to(dtype), points, mask, proposals.to(points.dtype))
        feats = self.proposal_proj(pooled + self.box_embed(proposals.to(dtype))).float()  # [B, Q, H]
        scale = 1.0 / math.sqrt(self.hidden_dim)
        scores = torch.einsum("bh,bqh->bq", q, feats) * scale
        if proposal_mask is not None:
            scores = scores.masked_fill(~proposal_mask, float("-inf"))
        none_score = (q @ self.no_object.float())[:, None] * scale
        return torch.cat([scores, none_score], dim=1)

    @staticmethod
    def proposal_loss(logits: Tensor, positives: Tensor) -> Tensor:
        """Cross-entropy against the uniform distribution over positive proposals.

        Args:
            logits: ``[B, Q + 1]`` (last = no object); positives: ``[B, Q]`` bool. A sample with no
            positive proposal targets the no-object slot.
        """
        target = torch.cat([positives.float(), (~positives.any(-1, keepdim=True)).float()], dim=1)
        target = target / target.sum(-1, keepdim=True)
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -(target * torch.where(target > 0, logp, torch.zeros_like(logp))).sum(-1).mean()

    @staticmethod
    def select(logits: Tensor) -> Tensor:
        """Index ``[B]`` of the best proposal, −1 where "no object" wins."""
        idx = logits.argmax(-1)
        return torch.where(idx == logits.shape[-1] - 1, torch.full_like(idx, -1), idx)
