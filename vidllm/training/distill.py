"""Stage-1 dual-teacher distillation losses (Vid-LLM paper Eq. 5–7).

Notation per clip: the student streams ``T'_geom``, ``T'_lang`` ``[N, P, C]`` (N = B·S frames,
P patches) — after the lightweight linear projections to the teachers' widths where the paper
applies them — and the teacher tokens ``T_tea_geo [N, P, C_g]`` (frozen DINOv2 from VGGT) and
``T_tea_lang [N, P_t, C_l]`` (frozen CLIP vision tower), the latter resampled to the student's
patch grid with :func:`resample_tokens` where the structural loss needs it.

* ``L_geo  = 1/N_tok Σ_i ‖Norm(T'_geom,i) − Norm(T_tea_geo,i)‖²``   (Eq. 6, Norm = L2 over channels)
* ``L_lang = 1 − cos(Pool(T'_lang), Pool(T_tea_lang))``              (Eq. 6, Pool = mean over a frame's tokens;
  averaged over frames)
* ``L_sc   = 1/M² ‖Z_stu Z_stuᵀ − Z_tea Z_teaᵀ‖²_F``                   (Eq. 7, per frame, ``Z = [Norm(geom); Norm(lang)]``
  stacks the M = 2P tokens of both streams; averaged over frames)
* ``L_distill = L_geo + L_lang + λ·L_sc``                             (Eq. 5)

``L_sc`` is computed with the Gram identity ``‖AAᵀ − BBᵀ‖²_F = ‖AᵀA‖²_F − 2‖AᵀB‖²_F + ‖BᵀB‖²_F``
(A ``[M, C_s]``, B ``[M, C_t]``), so it never builds the ``M×M`` similarity matrices and student
and teacher widths may differ. The teacher's ``Z`` stacks geometry and semantic tokens, which
needs the two teachers to share a width (true at paper scale: DINOv2-L and CLIP ViT-L are both
1024-d); when they differ, only the within-stream blocks (geo–geo and lang–lang) are compared
and the cross-stream blocks are left out.
"""

from __future__ import annotations

import functools
import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "l2_normalize",
    "geometry_distill_loss",
    "semantic_distill_loss",
    "structural_consistency_loss",
    "resample_tokens",
    "distillation_loss",
]

_log = logging.getLogger(__name__)


def l2_normalize(x: Tensor, eps: float = 1e-6) -> Tensor:
    """L2-normalise over the last (channel) dimension."""
    return F.normalize(x, dim=-1, eps=eps)


def geometry_distill_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """``L_geo`` (Eq. 6): mean over tokens of the squared distance of L2-normalised features.

    Args:
        student: ``[N, P, C]`` projected ``T'_geom``; teacher: ``[N, P, C]`` geometry-teacher tokens.
    Returns:
        scalar.
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"geometry distillation needs equal shapes, got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}"
        )
    diff = l2_normalize(student.float()) - l2_normalize(teacher.float())
    return diff.pow(2).sum(-1).mean()


def semantic_distill_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """``L_lang`` (Eq. 6): ``1 − cos`` of the per-frame mean-pooled features, averaged over frames.

    Args:
        student: ``[N, P, C]`` projected ``T'_lang``; teacher: ``[N, P_t, C]`` (token counts may differ).
    Returns:
        scalar.
    """
    if student.shape[0] != teacher.shape[0] or student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"semantic distillation needs matching frames and widths, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    cos = F.cosine_similarity(student.float().mean(1), teacher.float().mean(1), dim=-1, eps=1e-8)
    return (1.0 - cos).mean()


def _gram_gap(a: Tensor, b: Tensor) -> Tensor:
    """``‖a aᵀ − b bᵀ‖²_F`` per leading index for ``a [N, M, Ca]``, ``b [N, M, Cb]`` → ``[N]``."""
    aa = a.transpose(1, 2) @ a
    bb = b.transpose(1, 2) @ b
    ab = a.transpose(1, 2) @ b
    return aa.pow(2).sum((1, 2)) - 2 * ab.pow(2).sum((1, 2)) + bb.pow(2).sum((1, 2))


def structural_consistency_loss(stu_geom: Tensor, stu_lang: Tensor, tea_geom: Tensor, tea_lang: Tensor) -> Tensor:
    """``L_sc`` (Eq. 7) per frame, averaged over frames.

    Args:
        stu_geom, stu_lang: ``[N, P, C]`` student streams (``T'_geom``, ``T'_lang``).
        tea_geom: ``[N, P, C_g]``; tea_lang: ``[N, P, C_l]`` (semantic teacher resampled to the
            student grid).
    Returns:
        scalar ``1/M² ‖S_stu − S_tea‖²_F`` with ``M = 2P``, computed in float64.
    """
    n, p = stu_geom.shape[:2]
    for name, t in (("student lang", stu_lang), ("teacher geom", tea_geom), ("teacher lang", tea_lang)):
        if t.shape[:2] != (n, p):
            raise ValueError(
                f"structural consistency needs [N={n}, P={p}, C] tokens; {name} has shape {tuple(t.shape)}"
            )
    sg, sl = l2_normalize(stu_geom.double()), l2_normalize(stu_lang.double())
    tg, tl = l2_normalize(tea_geom.double()), l2_normalize(tea_lang.double())
    m = 2 * p
    if tg.shape[-1] == tl.shape[-1]:
        gap = _gram_gap(torch.cat([sg, sl], dim=1), torch.cat([tg, tl], dim=1))
    else:
        _warn_block_only(tg.shape[-1], tl.shape[-1])
        gap = _gram_gap(sg, tg) + _gram_gap(sl, tl)
    return (gap / (m * m)).mean().to(stu_geom.dtype if stu_geom.is_floating_point() else torch.float32)


@functools.lru_cache(maxsize=8)
def _warn_block_only(cg: int, cl: int) -> None:
    """Warn once per pair of teacher widths."""
    _log.warning("teacher widths differ (geometry %d, semantic %d): L_sc compares within-stream blocks only", cg, cl)


def resample_tokens(tokens: Tensor, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Tensor:
    """Bilinearly resample a token grid ``[N, h·w, C]`` from ``src_hw`` to ``dst_hw`` → ``[N, h'·w', C]``."""
    n, p, c = tokens.shape
    if p != src_hw[0] * src_hw[1]:
        raise ValueError(f"{p} tokens do not form a {src_hw[0]}×{src_hw[1]} grid")
    if tuple(src_hw) == tuple(dst_hw):
        return tokens
    grid = tokens.transpose(1, 2).reshape(n, c, *src_hw)
    out = F.interpolate(grid.float(), size=dst_hw, mode="bilinear", align_corners=False).to(tokens.dtype)
    return out.reshape(n, c, -1).transpose(1, 2)


def distillation_loss(
    stu_geom_proj: Tensor,
    stu_lang_proj: Tensor,
    stu_geom: Tensor,
    stu_lang: Tensor,
    tea_geom: Tensor,
    tea_lang: Tensor,
    student_hw: tuple[int, int],
    teacher_lang_hw: tuple[int, int],
    lambda_sc: float = 1.0,
) -> dict[str, Tensor]:
    """``L_distill = L_geo + L_lang + λ·L_sc`` (Eq. 5) with its parts.

    Args:
        stu_geom_proj: ``[N, P, C_g]`` projected ``T'_geom``; stu_lang_proj: ``[N, P, C_l]`` projected ``T'_lang``.
        stu_geom, stu_lang: ``[N, P, C]`` unprojected student streams (for ``L_sc``).
        tea_geom: ``[N, P, C_g]``; tea_lang: ``[N, P_t, C_l]`` on a ``teacher_lang_hw`` grid.
        student_hw: the student's patch grid ``(h, w)``.
    Returns:
        dict with ``loss``, ``geo``, ``lang``, ``sc``.
    """
    if not math.isfinite(lambda_sc):
        raise ValueError(f"lambda_sc must be finite, got {lambda_sc}")
    geo = geometry_distill_loss(stu_geom_proj, tea_geom)
    lang = semantic_distill_loss(stu_lang_proj, tea_lang)
    tea_lang_grid = resample_tokens(tea_lang, teacher_lang_hw, student_hw)
    sc = structural_consistency_loss(stu_geom, stu_lang, tea_geom, tea_lang_grid)
    return {"loss": geo + lang + lambda_sc * sc, "geo": geo, "lang": lang, "sc": sc}
