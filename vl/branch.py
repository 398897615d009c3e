"""The vision–language branch: 3D patches → voxel pooling → projector → LLM (+ grounding head).

Inputs follow the reconstruction branch's output contract (DESIGN §3): ``T'_lang [B, S, P, C]``
with ``P = (H/p)·(W/p)`` and a geometry dict holding ``depth [B, S, H, W]`` (metres, model frame
after real-scale alignment), ``depth_conf [B, S, H, W]`` (optional), ``extrinsic [B, S, 3, 4]``
world→camera and ``intrinsic [B, S, 3, 3]``. Geometry is detached (one-way gradient).

Text fields of a batch (``dict``):

* ``prompts``: B user prompts with one ``<3d>`` (see :mod:`vl.prompts`); ``answers``: B answers
  (grounding answers contain ``<ground>``);
* optional ``target_boxes``: B tensors ``[N_b, 6]`` (``N_b`` may be 0), ``proposals``: B tensors
  ``[Q_b, 6]`` and ``proposal_positives``: B bool tensors ``[Q_b]`` — in the aligned world when
  ``world_from_model [B, 4, 4]`` is given (mapped with its inverse), otherwise in the model frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vl.config import LLMConfig, VLConfig
from vl.grounding import GroundingHead, boxes_in_model_frame, boxes_in_world_frame
from vl.llm import LanguageModel
from vl.losses import combine_vl_losses
from vl.patches3d import build_position_embedding, patch_world_points
from vl.pooling import voxel_pool
from vl.prompts import GROUNDING_ANSWER

__all__ = ["VLBranch", "pad_boxes"]


def pad_boxes(boxes: list[Tensor], device, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """B box tensors ``[Q_b, 6]`` → ``[B, Q, 6]`` (zero padding) and mask ``[B, Q]`` (``Q = max Q_b``)."""
    q = max((int(b.reshape(-1, 6).shape[0]) for b in boxes), default=0)
    out = torch.zeros(len(boxes), q, 6, device=device, dtype=dtype)
    mask = torch.zeros(len(boxes), q, dtype=torch.bool, device=device)
    for i, b in enumerate(boxes):
        b = b.reshape(-1, 6)
        out[i, : b.shape[0]] = b.to(device=device, dtype=dtype)
        mask[i, : b.shape[0]] = True
    return out, mask


class VLBranch(nn.Module):
    """3D-VL branch of Vid-LLM (paper §3.3).

    Args:
        vl_cfg, llm_cfg: branch and LLM configs; dim: width C of ``T'_lang``;
        patch_size: encoder patch size p (14); tokenizer: needed when ``llm_cfg.path`` is None.
    """

    def __init__(self, vl_cfg: VLConfig, llm_cfg: LLMConfig, dim: int, patch_size: int = 14, tokenizer=None) -> None:
        super().__init__()
        self.cfg = vl_cfg
        self.dim = dim
        self.patch_size = patch_size
        self.pos_embed = build_position_embedding(vl_cfg.pos_embed, dim)
        self.lm = LanguageModel(llm_cfg, dim, vl_cfg.projector_layers, tokenizer)
        self.grounding = GroundingHead(self.lm.hidden_size, dim, vl_cfg.grounding.max_targets)

    # ------------------------------------------------------------------ 3D tokens
    def tokens_3d(self, t_lang: Tensor, geometry: dict[str, Tensor]) -> dict[str, Tensor]:
        """Eq. 3–4 then voxel pooling: ``T_3D = T'_lang + PE(P_v)``, pooled per voxel, capped.

        Returns:
            ``features [B, M, C]``, ``points [B, M, 3]`` (model frame), ``mask [B, M]``, ``counts [B, M]``.
        """
        for key in ("depth", "extrinsic", "intrinsic"):
            if key not in geometry:
                raise ValueError(f"VLBranch: geometry dict lacks {key!r} (have {sorted(geometry)})")
        if t_lang.ndim != 4 or t_lang.shape[-1] != self.dim:
            raise ValueError(f"VLBranch: T'_lang must be [B, S, P, {self.dim}], got {tuple(t_lang.shape)}")
        points, valid = patch_world_points(
            geometry["depth"], geometry["extrinsic"], geometry["intrinsic"], self.patch_size,
            self.cfg.depth_sample, geometry.get("depth_conf"), self.cfg.min_confidence,
        )
        if points.shape[:3] != t_lang.shape[:3]:
            h, w = geometry["depth"].shape[-2:]
            raise ValueError(
                f"VLBranch: T'_lang has P = {t_lang.shape[2]} tokens per frame but depth {h}x{w} with patch "
                f"{self.patch_size} gives {points.shape[2]}"
            )
        pe_dtype = next((q.dtype for q in self.pos_embed.parameters()), torch.float32)
        t3d = t_lang + self.pos_embed(points.to(pe_dtype)).to(t_lang.dtype)
        return voxel_pool(t3d.flatten(1, 2), points.flatten(1, 2), valid.flatten(1, 2), self.cfg.voxel_size, self.cfg.max_3d_tokens)

    @staticmethod
    def _anchor(tokens: dict[str, Tensor]) -> Tensor:
        m = tokens["mask"][..., None].to(tokens["points"].dtype)
        return (tokens["points"] * m).sum(1) / m.sum(1).clamp_min(1)

    def _to_model(self, boxes: list[Tensor], world_from_model: Tensor | None) -> list[Tensor]:
        if world_from_model is None:
            return [b.reshape(-1, 6).float() for b in boxes]
        return [boxes_in_model_frame(b.reshape(-1, 6).float(), world_from_model[i].float()) for i, b in enumerate(boxes)]

    # ------------------------------------------------------------------ training
    def forward(self, t_lang: Tensor, geometry: dict[str, Tensor], batch: dict) -> dict[str, Tensor]:
        """Teacher-forced pass with losses.

        Returns:
            ``loss`` (weighted total), its parts (``lm``, ``l1``, ``giou``, ``objectness``,
            ``proposal``), ``answer_logits``, ``ground_state``, ``num_3d_tokens [B]``.
        """
        tokens = self.tokens_3d(t_lang, geometry)
        out = self.lm(tokens["features"], tokens["mask"], list(batch["prompts"]), list(batch["answers"]))
        sel = out["has_ground"]
        # every grounding parameter joins the graph (zero-weighted) so DDP sees no unused parameters
        zero = sum(p.sum() for p in self.grounding.parameters()) * 0.0
        terms: dict[str, Tensor] = {}
        wfm = batch.get("world_from_model")
        mode = self.cfg.grounding.mode
        if mode in ("both", "regression") and batch.get("target_boxes") is not None:
            targets = self._to_model(list(batch["target_boxes"]), wfm)
            idx = sel.nonzero(as_tuple=True)[0].tolist()
            if idx:
                boxes, logits = self.grounding.regress(out["ground_state"][sel], self._anchor(tokens)[sel])
                terms.update(self.grounding.regression_loss(boxes, logits, [targets[i].to(boxes.device) for i in idx]))
            else:
                terms.update(l1=zero, giou=zero, objectness=zero)
        if mode in ("both", "proposal") and batch.get("proposals") is not None:
            props, pmask = pad_boxes(self._to_model(list(batch["proposals"]), wfm), t_lang.device)
            if batch.get("proposal_positives") is None:
                raise ValueError("VLBranch: batch has 'proposals' but no 'proposal_positives' (B bool tensors [Q_b])")
            positives = torch.zeros_like(pmask)
            for i, pos in enumerate(batch["proposal_positives"]):
                pos = pos.reshape(-1).to(device=pmask.device, dtype=torch.bool)
                if pos.numel() != int(pmask[i].sum()):
                    raise ValueError(f"VLBranch: sample {i} has {int(pmask[i].sum())} proposals but {pos.numel()} proposal_positives")
                positives[i, : pos.numel()] = pos
            if bool(sel.any()):
                logits = self.grounding.score_proposals(
                    out["ground_state"][sel], tokens["features"][sel], tokens["points"][sel], tokens["mask"][sel], props[sel], pmask[sel]
                )
                terms["proposal"] = self.grounding.proposal_loss(logits, positives[sel] & pmask[sel])
            else:
                terms["proposal"] = zero
        losses = combine_vl_losses(out["lm_loss"], terms, self.cfg)
        losses["loss"] = losses["loss"] + zero
        return {**losses, "answer_logits": out["answer_logits"], "ground_state": out["ground_state"], "num_3d_tokens": tokens["mask"].sum(1)}

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, t_lang: Tensor, geometry: dict[str, Tensor], prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers (B strings) for B prompts."""
        tokens = self.tokens_3d(t_lang, geometry)
        return self.lm.generate(tokens["features"], tokens["mask"], list(prompts), max_new_tokens)["text"]

    @torch.no_grad()
    def ground(self, t_lang: Tensor, geometry: dict[str, Tensor], prompts: list[str], proposals: list[Tensor] | None = None, world_from_model: Tensor | None = None) -> dict:
        """Predict boxes for grounding prompts (the answer is forced to ``<ground>``).

        Args:
            proposals: optional B tensors ``[Q_b, 6]`` (aligned world if ``world_from_model`` is given).
        Returns:
            ``boxes [B, T, 6]`` and ``scores [B, T]`` (regressed slots, objectness probability, frame as
            below), ``selected [B, T]`` (slots above ``grounding.score_threshold`` plus the best one:
            the multi-target prediction), ``box [B, 6]`` (the prediction: the chosen proposal if proposals were given and
            one was chosen, else the best regressed slot), ``proposal_index [B]`` (−1 = none / no
            object). Boxes are in the aligned world when ``world_from_model`` is given, else the model frame.
        """
        tokens = self.tokens_3d(t_lang, geometry)
        out = self.lm(tokens["features"], tokens["mask"], list(prompts), [GROUNDING_ANSWER] * len(prompts))
        boxes, logits = self.grounding.regress(out["ground_state"], self._anchor(tokens))
        scores = logits.sigmoid()
        top = scores.argmax(-1)
        selected = scores > self.cfg.grounding.score_threshold
        selected[torch.arange(boxes.shape[0], device=boxes.device), top] = True
        best = boxes[torch.arange(boxes.shape[0], device=boxes.device), top]
        choice = torch.full((boxes.shape[0],), -1, dtype=torch.long, device=boxes.device)
        if world_from_model is not None:
            boxes = torch.stack([boxes_in_world_frame(boxes[i], world_from_model[i].float()) for i in range(boxes.shape[0])])
            best = torch.stack([boxes_in_world_frame(best[i : i + 1], world_from_model[i].float())[0] for i in range(best.shape[0])])
        if proposals is not None and self.cfg.grounding.mode in ("both", "proposal"):
            props, pmask = pad_boxes(self._to_model(list(proposals), world_from_model), t_lang.device)
            plogits = self.grounding.score_proposals(out["ground_state"], tokens["features"], tokens["points"], tokens["mask"], props, pmask)
            choice = self.grounding.select(plogits)
            world_props, _ = pad_boxes([p.reshape(-1, 6).float() for p in proposals], t_lang.device)
            chosen = world_props[torch.arange(choice.shape[0], device=choice.device), choice.clamp_min(0)]
            best = torch.where((choice >= 0)[:, None], chosen, best)
        return {"boxes": boxes, "scores": scores, "selected": selected, "box": best, "proposal_index": choice}
