"""Typed output of :meth:`vidllm.model.VidLLM.forward` (in the manner of transformers' ``ModelOutput``).

Shapes use ``B`` clips, ``S`` frames, ``H × W`` pixels, ``P = (H/p)·(W/p)`` patches per frame
(patch size ``p``), ``C`` the encoder width and ``N`` the VL samples (``len(vl_index)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["VidLLMOutput"]


@dataclass
class VidLLMOutput:
    """Everything one :meth:`VidLLM.forward <vidllm.model.VidLLM.forward>` computes.

    Fields that a mode does not compute stay ``None``:

    * always — the reconstruction branch (``pose_enc`` … ``geometry_tokens``), the real-scale
      alignment (``scale``, ``depth_metric``, ``extrinsic_metric``) and ``streams``;
    * with ``metric_depth.enabled`` — ``metric_depth``; with its alignment on also ``frame_scales``;
    * with ``recon.camera_head.relative_pose`` — ``relative_pose_enc``;
    * with ``vl_batch`` or ``return_vl_inputs=True`` — ``t_lang`` and ``vl_geometry`` (the inputs of
      :meth:`vl.branch.VLBranch.forward` / ``generate`` / ``ground``, one row per clip);
    * with ``vl_batch`` — ``vl`` (the teacher-forced VL pass on the rows ``vl_index``) and ``vl_index``.

    The model has no point head: world points are the unprojected ``depth_metric`` (see
    :func:`recon.geometry.depth_to_world_points`), so there is no ``world_points`` field.

    **Dict-style access (transition).** Like ``transformers.ModelOutput``, an instance also reads as
    a mapping of its *non-None* fields: ``out["depth"]``, ``out.get("metric_depth")``,
    ``"scale" in out``, ``out.keys()`` / ``items()``, ``dict(out)``. A field that is ``None`` is
    absent from the mapping (``out["metric_depth"]`` raises ``KeyError`` when metric depth is off),
    as the old dict output had no such key. New code should use the attributes.
    """

    # ---------------------------------------------------------------- reconstruction branch (relative scale)
    pose_enc: Tensor | None = None
    """``[B, S, 9]`` camera encoding ``[t (3), quaternion (4), FoV_h, FoV_w]`` of the last refinement iteration."""
    pose_enc_list: list[Tensor] | None = None
    """``n × [B, S, 9]``: the pose encoding after every refinement iteration of the camera head (the camera loss reads all)."""
    depth: Tensor | None = None
    """``[B, S, H, W]`` depth of the DPT head (relative scale, VGGT's normalised scene)."""
    depth_conf: Tensor | None = None
    """``[B, S, H, W]`` confidence of ``depth`` (> 1)."""
    extrinsic: Tensor | None = None
    """``[B, S, 3, 4]`` world→camera poses decoded from ``pose_enc`` (relative scale; the first camera is the world)."""
    intrinsic: Tensor | None = None
    """``[B, S, 3, 3]`` pinhole intrinsics (pixels) decoded from ``pose_enc``."""
    geometry_tokens: Tensor | None = None
    """``[B, S, P, 2C]`` last aggregator layer, patch tokens only (the fusion baselines' and GeoVR alignment's geometry tokens)."""
    relative_pose_enc: Tensor | None = None
    """``[B, S, 7]`` ``[t, quat]`` of the relative-pose module (only with ``recon.camera_head.relative_pose``)."""
    # ---------------------------------------------------------------- metric depth and real-scale alignment
    metric_depth: Tensor | None = None
    """``[B, S, H, W]`` metres, from the metric depth model on the encoder's intermediate layers (``metric_depth.enabled``)."""
    frame_scales: Tensor | None = None
    """``[B, S]`` per-frame least-squares scales of the real-scale alignment (with the alignment enabled)."""
    scale: Tensor | None = None
    """``[B]`` scene scale: the median of ``frame_scales`` (ones without metric depth or alignment)."""
    depth_metric: Tensor | None = None
    """``[B, S, H, W]`` metres: ``depth · scale``."""
    extrinsic_metric: Tensor | None = None
    """``[B, S, 3, 4]`` world→camera with the translation scaled by ``scale`` (metres, model frame)."""
    # ---------------------------------------------------------------- encoder / CTA streams
    streams: dict[str, Any] | None = None
    """:meth:`VidLLM.encode_streams`: ``t_base``, ``t_geom``, ``t_lang`` ``[B, S, P, C]`` (``t_lang`` None for the
    fusion baselines), ``intermediates`` ``{layer: [B·S, P, C]}`` and ``grid_hw``."""
    # ---------------------------------------------------------------- vision–language branch
    t_lang: Tensor | None = None
    """``[B, S, P, C]`` ``T'_lang`` as the VL branch reads it (for the fusion baselines: fused with the detached ``geometry_tokens``)."""
    vl_geometry: dict[str, Tensor] | None = None
    """Detached metric geometry for the 3D patches (one-way gradient, §3.4): ``depth``, ``depth_conf`` ``[B, S, H, W]``,
    ``extrinsic`` ``[B, S, 3, 4]``, ``intrinsic`` ``[B, S, 3, 3]`` and, with the GeoVR alignment, ``geometry_tokens`` ``[B, S, P, 2C]``."""
    vl_index: list[int] | None = None
    """``[N]`` clip row of each VL sample (rows repeat when a clip has several questions)."""
    vl: dict[str, Tensor] | None = None
    """:meth:`vl.branch.VLBranch.forward` on ``t_lang[vl_index]``: ``loss`` (``L_VL``) and its scalar terms,
    ``answer_logits``, ``ground_state``, ``num_3d_tokens [N]``."""

    # ---------------------------------------------------------------- mapping view (transition)
    def keys(self) -> list[str]:
        """Names of the fields that are not None."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and getattr(self, key, None) is not None and key in _FIELD_NAMES

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def to_dict(self) -> dict[str, Any]:
        """The non-None fields as a plain dict (shallow)."""
        return dict(self.items())


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(VidLLMOutput))
