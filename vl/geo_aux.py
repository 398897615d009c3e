"""GeoVR-style auxiliary geometric heads on the LLM hidden states (GeoVR §3.3–3.6).

GeoVR: "Learning Geometric Representations from Videos for Spatial Intelligent Multimodal Large
Language Models"; section and equation numbers below are that paper's.

A training-time baseline, selected by ``vl.geo_aux.enabled`` (``configs/baselines/geovr_aux.yaml``).
GeoVR feeds per-frame 2D visual tokens to its MLLM and supervises them with a frozen 3D teacher;
here the LLM sees voxel-pooled 3D tokens (:meth:`vl.branch.VLBranch.tokens_3d`) and the teacher is
our own reconstruction branch: every target is computed from the **detached** metric geometry the
VL branch already receives (``depth``, ``extrinsic``, ``intrinsic``; ``geometry_tokens`` for the
alignment), so no ground truth is needed and the one-way gradient holds (VL losses reach the LLM,
the projector, the position embedding, the CTA and the encoder, never the aggregator or the heads
of the reconstruction branch).

Query tokens are spliced in right after the 3D tokens, in training *and* inference (same sequence,
the heads themselves never run at inference): ``[3D tokens, cam_1 … cam_S, scale]``.

* **Camera token** (§3.3): one learnable token, added to each frame's summary (the projected mean of
  that frame's valid 3D patch tokens ``T'_lang + PE``, since pooling mixes frames) → S queries.
  An MLP on their last-layer hidden states regresses the 9-D pose encoding
  ``[t, q_xyzw, fov_h, fov_w]`` (:mod:`recon.geometry`) of each frame; target: the encoding of the clip's
  ``extrinsic``/``intrinsic`` with ``t`` divided by the scene scale ``s``. Loss (Eq. 2, L1):
  ``mean_{b,i} ‖t̂−t‖₁ + λ_q‖q̂−q‖₁ + λ_f‖f̂−f‖₁``.
* **Geometry ("depth") head** (§3.4): an MLP on the concatenated hidden states of the 3D-token
  positions at ``depth_layers`` predicts each voxel's point ``p̂`` (model frame = first camera, so
  its z is the depth seen from frame 0) and a confidence ``c = 1 + exp(x)``; target: the voxel's
  pooled point divided by ``s``. Loss (Eq. 3, aleatoric, DUSt3R/VGGT):
  ``mean_m c_m‖p̂_m − p_m‖₂ − α·log c_m`` over valid voxels. Voxels have no image grid, so the
  gradient term of Eq. 3 is omitted.
* **Scale token** (§3.5): one learnable token at the end; an MLP with exponential output gives
  ``ŝ = exp(y)``; target: the VGGT normalisation factor of the metric clip, the mean distance of
  the valid patch points to the model-frame origin. Loss (Eq. 4): ``mean_b |log ŝ − log s|``.
* **Multi-layer alignment** (§3.6): for each LLM layer of ``align_layers`` an MLP projects the
  3D-token hidden states to the geometry-token width; target: the aggregator's (detached)
  geometry tokens ``[B, S, P, 2C]`` voxel-pooled exactly like the 3D tokens (same voxels, same
  order). Loss (Eq. 5): ``mean_layers mean_m (1 − cos(proj(h_m), g_m))``. The reconstruction
  branch exposes only its last aggregator layer, so every LLM layer aligns to that one.

Samples without a valid 3D point are left out of every term (the term is an exact 0 when no sample
has one, still connected to the heads so DDP sees every parameter used).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon.geometry import extri_intri_to_pose_encoding
from vl.config import GeoAuxConfig
from vl.pooling import voxel_pool

__all__ = [
    "GeoAuxHeads",
    "resolve_layers",
    "scene_scale",
    "camera_loss",
    "geometry_loss",
    "scale_loss",
    "alignment_loss",
    "LOSS_NAMES",
]

LOSS_NAMES = {"camera": "geo_camera", "depth": "geo_depth", "scale": "geo_scale", "align": "geo_align"}
"""Keys of the unweighted auxiliary terms in the VL loss dict (logged as ``vl/<key>``)."""


def resolve_layers(fractions: list[float], num_layers: int) -> list[int]:
    """Depth fractions → indices into the LLM's hidden-state stack (``l`` = output of decoder layer ``l``)."""
    return [min(num_layers, max(1, round(float(f) * num_layers))) for f in fractions]


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` (same shape) is True; an exact 0 (in the graph) when none is."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


# --------------------------------------------------------------------------- targets and losses
def scene_scale(points: Tensor, valid: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Scene scale ``s [B]`` = mean distance of the valid points ``[B, N, 3]`` to the origin, and ``has [B]``."""
    v = valid.to(points.dtype)
    dist = points.norm(dim=-1)
    s = (dist * v).sum(-1) / v.sum(-1).clamp_min(1.0)
    has = valid.any(-1) & (s > eps)
    return torch.where(has, s, torch.ones_like(s)), has


def camera_loss(pred: Tensor, target: Tensor, valid: Tensor, rotation_weight: float, fov_weight: float) -> Tensor:
    """GeoVR Eq. 2: ``mean ‖t̂−t‖₁ + λ_q‖q̂−q‖₁ + λ_f‖f̂−f‖₁`` over the frames ``valid [B, S]``; pred/target ``[B, S, 9]``."""
    err = (pred.float() - target.float()).abs()
    per = err[..., :3].sum(-1) + rotation_weight * err[..., 3:7].sum(-1) + fov_weight * err[..., 7:9].sum(-1)
    return _masked_mean(per, valid)


def geometry_loss(pred: Tensor, conf: Tensor, target: Tensor, mask: Tensor, alpha: float) -> Tensor:
    """GeoVR Eq. 3 (aleatoric part): ``mean c·‖p̂−p‖₂ − α·log c`` over ``mask [B, M]``; pred/target ``[B, M, 3]``, conf ``[B, M]`` (> 1)."""
    per = conf.float() * (pred.float() - target.float()).norm(dim=-1) - alpha * conf.float().log()
    return _masked_mean(per, mask)


def scale_loss(log_scale: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """GeoVR Eq. 4: ``mean |log ŝ − log s|`` over ``valid [B]``; ``log_scale [B]`` is ``log ŝ``, target ``s [B]``."""
    return _masked_mean((log_scale.float() - target.float().clamp_min(1e-6).log()).abs(), valid)


def alignment_loss(projected: list[Tensor], target: Tensor, mask: Tensor) -> Tensor:
    """GeoVR Eq. 5: ``mean_layers mean_m (1 − cos(ĥ_m, g_m))``; each projected ``[B, M, D]``, target ``[B, M, D]``."""
    terms = [
        _masked_mean(1.0 - F.cosine_similarity(z.float(), target.float(), dim=-1, eps=1e-6), mask) for z in projected
    ]
    return torch.stack(terms).mean()


# --------------------------------------------------------------------------- heads
class GeoAuxHeads(nn.Module):
    """Learnable query tokens and the auxiliary heads; a head exists only when its weight is > 0.

    Args:
        cfg: the ``vl.geo_aux`` config; hidden: LLM width H; dim: width C of ``T'_lang``;
        num_layers: decoder layers L of the LLM (to resolve the layer fractions).
    """

    def __init__(self, cfg: GeoAuxConfig, hidden: int, dim: int, num_layers: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.hidden = hidden
        self.use_camera = cfg.camera_weight > 0
        self.use_depth = cfg.depth_weight > 0
        self.use_scale = cfg.scale_weight > 0
        self.use_align = cfg.align_weight > 0
        self.depth_layers = resolve_layers(cfg.depth_layers, num_layers) if self.use_depth else []
        self.align_layers = resolve_layers(cfg.align_layers, num_layers) if self.use_align else []
        if self.use_camera:
            self.camera_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
            self.camera_head = _mlp(hidden, hidden, 9)
        if self.use_scale:
            self.scale_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
            self.scale_head = _mlp(hidden, hidden, 1)
        if self.use_depth:
            self.depth_head = _mlp(len(self.depth_layers) * hidden, hidden, 4)
        if self.use_align:
            gdim = cfg.geometry_dim or 2 * dim
            self.align_heads = nn.ModuleList(_mlp(hidden, hidden, gdim) for _ in self.align_layers)

    @property
    def needs_all_layers(self) -> bool:
        """Whether the heads read hidden states below the last layer."""
        return self.use_depth or self.use_align

    def num_queries(self, num_frames: int) -> int:
        """Query tokens spliced after the 3D tokens for a clip of ``num_frames`` frames."""
        return num_frames * int(self.use_camera) + int(self.use_scale)

    def queries(self, batch_size: int, frame_summary: Tensor | None = None) -> Tensor | None:
        """Query embeddings ``[B, K, H]``: ``camera_token + frame_summary`` (``[B, S, H]``, needed with the
        camera head) then the scale token; None if K = 0."""
        parts = []
        if self.use_camera:
            if frame_summary is None:
                raise ValueError("geo_aux: the camera queries need the per-frame summaries [B, S, H]")
            parts.append(self.camera_token.to(frame_summary.dtype) + frame_summary)
        if self.use_scale:
            parts.append(self.scale_token.expand(batch_size, 1, -1))
        return torch.cat(parts, dim=1) if parts else None

    def _head_in(self, x: Tensor, head: nn.Module) -> Tensor:
        return x.to(next(head.parameters()).dtype)

    def predict(
        self, token_states: dict[int, Tensor], query_states: Tensor | None, num_frames: int
    ) -> dict[str, Tensor]:
        """Run the heads.

        Args:
            token_states: ``{layer: [B, M, H]}`` hidden states at the 3D-token slots for every layer the heads read.
            query_states: last-layer hidden states of the query tokens ``[B, K, H]`` (None if K = 0).
        Returns:
            any of ``pose_enc [B, S, 9]``, ``log_scale [B]``, ``points [B, M, 3]``, ``conf [B, M]``,
            ``align`` (list of ``[B, M, D]``).
        """
        out: dict[str, Tensor] = {}
        k = 0
        if self.use_camera:
            cam = query_states[:, :num_frames]
            out["pose_enc"] = self.camera_head(self._head_in(cam, self.camera_head))
            k = num_frames
        if self.use_scale:
            out["log_scale"] = self.scale_head(self._head_in(query_states[:, k], self.scale_head))[..., 0]
        if self.use_depth:
            feats = torch.cat([token_states[layer] for layer in self.depth_layers], dim=-1)
            raw = self.depth_head(self._head_in(feats, self.depth_head))
            out["points"] = raw[..., :3]
            out["conf"] = 1.0 + raw[..., 3].float().exp()
        if self.use_align:
            out["align"] = [
                head(self._head_in(token_states[layer], head))
                for layer, head in zip(self.align_layers, self.align_heads)
            ]
        return out

    # ------------------------------------------------------------------ targets
    @torch.no_grad()
    def targets(
        self, geometry: dict[str, Tensor], tokens: dict[str, Tensor], voxel_size: float, max_tokens: int
    ) -> dict[str, Tensor]:
        """Detached targets from the branch's geometry dict and its 3D tokens (see the module docstring).

        Returns:
            ``scale [B]``, ``has_geometry [B]``, ``pose_enc [B, S, 9]``, ``points [B, M, 3]`` and, when
            ``geometry`` holds ``geometry_tokens [B, S, P, D]``, ``geometry_tokens`` pooled to ``[B, M, D]``.
        """
        pts = tokens["patch_points"].flatten(1, 2).float()
        valid = tokens["patch_valid"].flatten(1, 2)
        scale, has = scene_scale(pts, valid)
        norm = scale if self.cfg.normalize_by_scale else torch.ones_like(scale)
        out = {"scale": scale, "has_geometry": has}
        if self.use_camera:
            hw = tuple(geometry["depth"].shape[-2:])
            enc = extri_intri_to_pose_encoding(
                geometry["extrinsic"].detach().float(), geometry["intrinsic"].detach().float(), hw
            )
            enc = torch.cat([enc[..., :3] / norm[:, None, None], enc[..., 3:]], dim=-1)
            out["pose_enc"] = enc
        if self.use_depth:
            out["points"] = tokens["points"].detach().float() / norm[:, None, None]
        if self.use_align and "geometry_tokens" in geometry:
            g = geometry["geometry_tokens"].detach()
            if g.shape[:3] != tokens["patch_valid"].shape:
                raise ValueError(
                    f"geo_aux: geometry_tokens {tuple(g.shape)} do not match the patch grid {tuple(tokens['patch_valid'].shape)} (expected [B, S, P, D])"
                )
            pooled = voxel_pool(
                g.flatten(1, 2).float(), tokens["patch_points"].flatten(1, 2), valid, voxel_size, max_tokens
            )
            if pooled["features"].shape[1] != tokens["mask"].shape[1] or not torch.equal(
                pooled["mask"], tokens["mask"]
            ):
                raise RuntimeError("geo_aux: pooled geometry tokens do not line up with the 3D tokens")
            out["geometry_tokens"] = pooled["features"]
        return out

    def losses(self, pred: dict[str, Tensor], target: dict[str, Tensor], token_mask: Tensor) -> dict[str, Tensor]:
        """Unweighted terms keyed by :data:`LOSS_NAMES` (only the enabled heads; ``geo_align`` is absent without targets)."""
        cfg = self.cfg
        has = target["has_geometry"]
        mask = token_mask & has[:, None]
        out: dict[str, Tensor] = {}
        if self.use_camera:
            frames = has[:, None].expand(pred["pose_enc"].shape[:2])
            out[LOSS_NAMES["camera"]] = camera_loss(
                pred["pose_enc"], target["pose_enc"], frames, cfg.rotation_weight, cfg.fov_weight
            )
        if self.use_depth:
            out[LOSS_NAMES["depth"]] = geometry_loss(
                pred["points"], pred["conf"], target["points"], mask, cfg.depth_conf_alpha
            )
        if self.use_scale:
            out[LOSS_NAMES["scale"]] = scale_loss(pred["log_scale"], target["scale"], has)
        if self.use_align and "geometry_tokens" in target:
            out[LOSS_NAMES["align"]] = alignment_loss(pred["align"], target["geometry_tokens"], mask)
        return out

    def weighted_total(self, terms: dict[str, Tensor]) -> Tensor:
        """``Σ w·term`` with the weights of the config."""
        cfg = self.cfg
        weights = {
            LOSS_NAMES["camera"]: cfg.camera_weight,
            LOSS_NAMES["depth"]: cfg.depth_weight,
            LOSS_NAMES["scale"]: cfg.scale_weight,
            LOSS_NAMES["align"]: cfg.align_weight,
        }
        total = torch.zeros((), device=self.device)
        for key, value in terms.items():
            total = total + weights[key] * value.float()
        return total

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
