"""VL loss assembly: ``L_VL = w_lm·L_LM + w_l1·L1 + w_giou·(1−GIoU) + w_obj·BCE + w_prop·CE + w_loc·L_loc`` (weights in VLConfig)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from vl.config import VLConfig

__all__ = ["combine_vl_losses", "zero_graph_term"]


def zero_graph_term(params: Iterable[Tensor]) -> Tensor | float:
    """``0.0 · Σ p.sum()`` over ``params``: a zero that has every parameter in its graph.

    Added to a loss, it gives each parameter a (zero) gradient, so ``DistributedDataParallel``
    finds no unused parameters on a step that skips a head; the loss value is unchanged.
    No parameters give the float ``0.0``.
    """
    return sum(p.sum() for p in params) * 0.0


def combine_vl_losses(lm_loss: Tensor, grounding: dict[str, Tensor], cfg: VLConfig) -> dict[str, Tensor]:
    """Weighted sum of the VL terms.

    Args:
        lm_loss: scalar LM cross-entropy over answer tokens.
        grounding: any of ``l1``, ``giou``, ``objectness`` (regression head) and ``proposal``
            (proposal scorer), ``localization`` (readout, vl/readout.py) — scalars; missing terms count as 0. Terms of a head disabled by
            ``cfg.grounding.mode`` are ignored.
        cfg: weights ``lm_weight``, ``grounding.{l1,giou,objectness,proposal}_weight``.
    Returns:
        ``{"loss": total, "lm": ..., "l1": ..., ...}`` (the weighted total and the unweighted parts).
    """
    g = cfg.grounding
    weights = {"lm": cfg.lm_weight}
    if g.mode in ("both", "regression"):
        weights.update(l1=g.l1_weight, giou=g.giou_weight, objectness=g.objectness_weight)
    if g.mode in ("both", "proposal"):
        weights["proposal"] = g.proposal_weight
    if cfg.readout.enabled:
        weights["localization"] = cfg.readout.localization_weight
    parts = {"lm": lm_loss, **{k: v for k, v in grounding.items() if k in weights}}
    total = sum(weights[k] * v.float() for k, v in parts.items())
    return {"loss": total, **parts}
