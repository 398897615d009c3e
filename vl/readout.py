"""Question-conditioned readout of the 3D tokens, ending the prompt (``vl.readout``, off by default).

A tiny LM trained from scratch on a few thousand questions does not learn to look up the object a
question names among ~256 3D tokens: on the demo's held-out scenes its answers do not change when
the scenes' tokens are swapped, and even tokens that carry each object's category and colour
exactly (an oracle) leave colour questions at chance after 1800 VL steps. This module gives the
lookup a direct, supervised path (in the spirit of ScanQA's object-localisation loss):

* the question (the prompt without ``<3d>``) runs once through the LM alone; its last-layer states
  ``s_t [B, T, H]`` are pooled by K learned attention heads, ``q_k = W_q Σ_t a_tk LN(s_t)``;
* each head attends over the projected 3D tokens ``v_m [B, M, H]``:
  ``p_km = softmax_m(q_k · W_k LN(v_m) / √H)``, ``r_k = W_o Σ_m p_km v_m + W_s mean_t LN(s_t)``
  (the question's mean state rides along, so the answer's type is as close as the looked-up content);
* the K readout tokens ``r [B, K, H]`` end the prompt, right before the answer, so the state that
  predicts the first answer token is the readout itself;
* :func:`localization_loss` puts the heads' mean attention on the tokens inside the question's
  objects (their annotated boxes): ``L_loc = −log Σ_{m ∈ target} p̄_m``;
* with ``vl.readout.hops = 2`` a second lookup follows: its queries add the first hop's read-out,
  ``q'_k = W'_q Σ_t a'_tk LN(s_t) + W_r Σ_m p_km v_m``, and its logits are biased towards the first
  hop's attention-weighted position ``c_k = Σ_m p_km x_m``:
  ``p'_km = softmax_m(q'_k · W'_k LN(v_m) / √H − β ‖x_m − c_k‖)`` (β = softplus, learned); both hops'
  tokens end the prompt (2K), and the loss and proposal term use the second hop's attention. A tiny
  model tells colours apart but not categories, and "what color is the chair next to the white
  chair?" is then answered by finding the white object and reading its neighbour;
* with ``vl.readout.score_proposals`` the grounding head's proposal logits get
  ``λ · log(ε + Σ_{m ∈ proposal} p̄_m)`` (λ learned, starting at 1): a description and a question
  localise with the same attention, and grounding picks the proposal holding its mass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vl.grounding_head import points_in_boxes, points_in_world_frame, pool_tokens_in_boxes

__all__ = ["QuestionReadout", "tokens_in_boxes", "localization_loss"]


class QuestionReadout(nn.Module):
    """K attention heads from the pooled question states over the projected 3D tokens.

    Args:
        hidden_dim: LLM width H; num_tokens: K readout tokens (one attention head each).
    """

    def __init__(self, hidden_dim: int, num_tokens: int, hops: int = 1) -> None:
        super().__init__()
        if num_tokens < 1:
            raise ValueError(f"vl.readout.num_tokens must be >= 1, got {num_tokens}")
        if hops not in (1, 2):
            raise ValueError(f"vl.readout.hops must be 1 or 2, got {hops}")
        self.num_tokens = num_tokens
        self.hops = hops
        self.norm_question = nn.LayerNorm(hidden_dim)
        self.norm_tokens = nn.LayerNorm(hidden_dim)
        self.pool = nn.Linear(hidden_dim, num_tokens)
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, hidden_dim)
        self.summary = nn.Linear(hidden_dim, hidden_dim)
        self.proposal_scale = nn.Parameter(torch.ones(()))
        if hops == 2:
            self.pool2 = nn.Linear(hidden_dim, num_tokens)
            self.query2 = nn.Linear(hidden_dim, hidden_dim)
            self.relay = nn.Linear(hidden_dim, hidden_dim)
            self.key2 = nn.Linear(hidden_dim, hidden_dim)
            self.out2 = nn.Linear(hidden_dim, hidden_dim)
            self.distance_scale = nn.Parameter(torch.zeros(()))  # β = softplus(0) ≈ 0.69 per metre

    def forward(
        self, question: Tensor, question_mask: Tensor, tokens: Tensor, token_mask: Tensor, points: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Readout tokens and attention.

        Args:
            question: ``[B, T, H]`` last-layer states of the question; question_mask: ``[B, T]`` bool.
            tokens: ``[B, M, H]`` projected 3D tokens; token_mask: ``[B, M]`` bool.
            points: ``[B, M, 3]`` token positions in metres (needed with two hops).
        Returns:
            ``readout [B, K · hops, H]`` and the last hop's ``attention [B, K, M]`` (rows sum to 1 over
            valid tokens; 0 for a sample without tokens).
        """
        s = self.norm_question(question)
        normed = self.norm_tokens(tokens)
        q = self.query(self._pool(self.pool, s, question_mask))
        attention = self._attend(q, self.key(normed), token_mask)
        summary = self.summary(
            s.masked_fill(~question_mask[..., None], 0.0).sum(1) / question_mask.sum(1, keepdim=True).clamp_min(1)
        )
        looked = torch.einsum("bkm,bmh->bkh", attention.to(tokens.dtype), tokens)
        read = self.out(looked) + summary[:, None]
        if self.hops == 1:
            return read, attention
        if points is None:
            raise ValueError("a two-hop readout (vl.readout.hops = 2) needs the 3D tokens' points")
        anchor = torch.einsum("bkm,bmc->bkc", attention, points.float())  # [B, K, 3]
        distance = torch.linalg.vector_norm(points.float()[:, None] - anchor[:, :, None], dim=-1)  # [B, K, M]
        q2 = self.query2(self._pool(self.pool2, s, question_mask)) + self.relay(looked)
        bias = -nn.functional.softplus(self.distance_scale.float()) * distance
        attention2 = self._attend(q2, self.key2(normed), token_mask, bias)
        read2 = self.out2(torch.einsum("bkm,bmh->bkh", attention2.to(tokens.dtype), tokens)) + summary[:, None]
        return torch.cat([read, read2], dim=1), attention2

    @staticmethod
    def _pool(pool: nn.Linear, s: Tensor, mask: Tensor) -> Tensor:
        """``Σ_t a_tk s_t`` ``[B, K, H]`` with ``a = softmax_t(pool(s))`` over the valid question states."""
        weights = pool(s).float().masked_fill(~mask[..., None], float("-inf"))
        weights = torch.softmax(weights, dim=1).nan_to_num(0.0)  # [B, T, K]
        return torch.einsum("btk,bth->bkh", weights.to(s.dtype), s)

    @staticmethod
    def _attend(q: Tensor, k: Tensor, mask: Tensor, bias: Tensor | None = None) -> Tensor:
        """``softmax_m(q_k · k_m / √H + bias)`` ``[B, K, M]`` over the valid tokens (0 rows without any)."""
        logits = torch.einsum("bkh,bmh->bkm", q, k).float() / q.shape[-1] ** 0.5
        if bias is not None:
            logits = logits + bias
        logits = logits.masked_fill(~mask[:, None], float("-inf"))
        return torch.softmax(logits, dim=-1).nan_to_num(0.0)

    def proposal_term(
        self,
        attention: Tensor,
        points: Tensor,
        mask: Tensor,
        proposals: Tensor,
        world_from_model: Tensor | None = None,
        eps: float = 1e-3,
    ) -> Tensor:
        """``λ · log(ε + readout mass inside each proposal)`` ``[B, Q]``, added to the proposal logits.

        Args:
            attention: ``[B, K, M]``; points ``[B, M, 3]`` (model frame), mask ``[B, M]``;
            proposals: ``[B, Q, 6]`` aligned-world AABBs with ``world_from_model [B, 4, 4]``, else model frame.
        """
        p = (
            points.float()
            if world_from_model is None
            else points_in_world_frame(points.float(), world_from_model.float())
        )
        mean, counts = pool_tokens_in_boxes(attention.float().mean(1)[..., None], p, mask, proposals.float())
        mass = mean[..., 0] * counts
        return self.proposal_scale.float() * torch.log(mass + eps)


def tokens_in_boxes(
    points: Tensor, mask: Tensor, boxes: Tensor, box_mask: Tensor, world_from_model: Tensor | None, margin: float
) -> Tensor:
    """Which tokens lie in any of their sample's boxes.

    Args:
        points: ``[B, M, 3]`` token positions (model frame); mask: ``[B, M]`` bool.
        boxes: ``[B, Q, 6]`` ``[cx, cy, cz, dx, dy, dz]`` axis-aligned in the aligned world when
            ``world_from_model [B, 4, 4]`` is given (points are mapped there), else in the model frame;
            box_mask: ``[B, Q]`` bool (padding = False).
        margin: metres added on every side of each box.
    Returns:
        ``[B, M]`` bool.
    """
    p = points.float() if world_from_model is None else points_in_world_frame(points.float(), world_from_model.float())
    inside = points_in_boxes(p, mask, boxes.to(p), margin) & box_mask[..., None]
    return inside.any(1)


def localization_loss(attention: Tensor, targets: Tensor) -> Tensor:
    """``−log Σ_{m ∈ target} p̄_m`` averaged over the samples with at least one target token.

    Args:
        attention: ``[B, K, M]`` readout attention; targets: ``[B, M]`` bool.
    Returns:
        scalar (0 with a graph when no sample has a target token).
    """
    has = targets.any(-1)
    if not bool(has.any()):
        return attention.sum() * 0.0
    mass = (attention.float().mean(1) * targets).sum(-1)[has]
    return -torch.log(mass.clamp_min(1e-6)).mean()
