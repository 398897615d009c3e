"""Scan2Cap dense-captioning metrics m@kIoU (README "Evaluation protocols").

Protocol (Scan2Cap, Chen et al. 2021): for every GT object ``i`` with reference captions, the
model's caption counts only if the box it was generated for has ``IoU ≥ k`` (default 0.5) with
the GT box; otherwise the object is scored with an empty caption. With the per-object score
``m_i`` of a caption metric (CIDEr, BLEU-4, METEOR, ROUGE-L) and ``u_i = 1[IoU_i ≥ k]``::

    m@kIoU = (1/N) · Σ_i m_i · u_i

over all ``N`` GT objects (objects without a prediction have ``u_i = 0``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vidllm.metrics.ngram_metrics import CaptionScorer, caption_metrics

__all__ = ["scan2cap_key", "scan2cap_candidates", "m_at_k_iou", "scan2cap_metrics"]


def scan2cap_key(scene_id: str, object_id) -> str:
    """The object key used by the Scan2Cap dicts: ``"{scene_id}|{object_id}"``."""
    return f"{scene_id}|{object_id}"


def scan2cap_candidates(
    preds: Mapping,
    ious: Mapping,
    refs: Mapping,
    iou_threshold: float = 0.5,
    empty_caption: str = "",
) -> tuple[dict, dict]:
    """Per-object candidate captions and IoU indicators for the caption scorer.

    Args:
        preds: ``{object_key: predicted caption}`` (objects may be missing).
        ious: ``{object_key: IoU of the box the caption belongs to with the GT box}``.
        refs: ``{object_key: [reference captions]}``: the GT objects that are scored.
        iou_threshold: ``k``; a caption counts when ``IoU ≥ k`` (inclusive).
        empty_caption: what replaces a caption that does not count.

    Returns:
        ``(candidates {key: str}, indicators {key: 0.0 | 1.0})`` over the keys of ``refs``, in order.
    """
    candidates: dict = {}
    indicators: dict = {}
    for key in refs:
        iou = ious.get(key)
        hit = key in preds and iou is not None and np.isfinite(float(iou)) and float(iou) >= iou_threshold
        candidates[key] = preds[key] if hit else empty_caption
        indicators[key] = 1.0 if hit else 0.0
    return candidates, indicators


def m_at_k_iou(per_item: Mapping, indicators: Mapping) -> float:
    """``(1/N) Σ_i m_i · u_i`` over the keys of ``indicators``.

    Args:
        per_item: ``{key: m_i}`` per-object metric values (must hold every key of ``indicators``).
        indicators: ``{key: u_i ∈ {0, 1}}``.

    Returns:
        the IoU-masked mean (0 when there are no objects).
    """
    if not indicators:
        return 0.0
    missing = [k for k in indicators if k not in per_item]
    if missing:
        raise ValueError(f"vidllm/metrics/dense_caption_metrics.py: no per-object score for object {missing[0]!r}")
    values = np.array([float(per_item[k]) * float(u) for k, u in indicators.items()], dtype=np.float64)
    return float(values.mean())


def scan2cap_metrics(
    preds: Mapping,
    ious: Mapping,
    refs: Mapping,
    iou_threshold: float = 0.5,
    scorer: CaptionScorer | None = None,
) -> dict:
    """CIDEr / BLEU-4 / METEOR / ROUGE-L @kIoU of dense captions.

    Args:
        preds: ``{object_key: predicted caption}`` (see :func:`scan2cap_key`).
        ious: ``{object_key: IoU}`` of each caption's box with its GT object.
        refs: ``{object_key: [reference captions]}``.
        iou_threshold: ``k``.
        scorer: replacement caption scorer (default: pycocoevalcap via :func:`caption_metrics`).

    Returns:
        ``{"cider@0.5": float, "bleu-4@0.5": ..., "meteor@0.5": float | None, "rouge-l@0.5": ...,
        "count": N, "matched": Σ u_i, "unavailable": {...}}`` (key suffix follows ``iou_threshold``).
    """
    candidates, indicators = scan2cap_candidates(preds, ious, refs, iou_threshold)
    scores = caption_metrics(candidates, refs, scorer=scorer)
    suffix = f"@{iou_threshold:g}"
    out: dict = {}
    for name in ("cider", "bleu-4", "meteor", "rouge-l"):
        items = scores.per_item.get(name)
        out[name + suffix] = m_at_k_iou(items, indicators) if items is not None else None
    out["count"] = len(indicators)
    out["matched"] = int(sum(indicators.values()))
    out["unavailable"] = dict(scores.unavailable)
    return out
