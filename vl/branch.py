"""The vision–language branch: 3D patches → voxel pooling → projector → LLM (+ grounding head).

Inputs follow the reconstruction branch's output contract (README "Conventions"): ``T'_lang [B, S, P, C]``
with ``P = (H/p)·(W/p)`` and a geometry dict holding ``depth [B, S, H, W]`` (metres, model frame
after real-scale alignment), ``depth_conf [B, S, H, W]`` (optional), ``extrinsic [B, S, 3, 4]``
world→camera and ``intrinsic [B, S, 3, 3]``. Geometry is detached (one-way gradient).

Text fields of a batch (``dict``):

* ``prompts``: B user prompts with one ``<3d>`` (see :mod:`vl.prompts`); ``answers``: B answers
  (grounding answers contain ``<ground>``);
* ``text``: their encoding by :class:`vl.processing.VidLLMProcessor` (``lm.processor(prompts, answers)``; training
  makes it in the collate); without it the strings are tokenised in the forward (compatibility path);
* optional ``target_boxes``: B tensors ``[N_b, 6]`` (``N_b`` may be 0), ``proposals``: B tensors
  ``[Q_b, 6]`` and ``proposal_positives``: B bool tensors ``[Q_b]`` — in the aligned world when
  ``world_from_model [B, 4, 4]`` is given (mapped with its inverse), otherwise in the model frame.
  With the pose, proposal features pool the 3D tokens whose points, mapped into the aligned world,
  lie inside the world AABB (no inflation by rotating boxes); without it, containment is tested in
  the model frame on the boxes as given (e.g. the API's model-frame proposals).

With ``vl.geo_aux.enabled`` the GeoVR-style auxiliary heads of :mod:`vl.geo_aux` add camera /
scale query tokens after the 3D tokens (training and inference alike) and, in :meth:`VLBranch.forward`,
the terms ``geo_camera``, ``geo_depth``, ``geo_scale``, ``geo_align`` to the VL loss. The alignment
reads the aggregator's detached ``geometry_tokens [B, S, P, 2C]`` from the geometry dict when present.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vl.config import LLMConfig, VLConfig
from vl.geo_aux import GeoAuxHeads
from vl.grounding_head import GroundingHead, boxes_in_model_frame, boxes_in_world_frame
from vl.llm import LanguageModel
from vl.losses import combine_vl_losses, zero_graph_term
from vl.patches3d import build_position_embedding, patch_world_points
from vl.pooling import voxel_pool
from vl.processing import is_encoded
from vl.prompts import GROUNDING_ANSWER
from vl.readout import QuestionReadout, localization_loss, tokens_in_boxes

__all__ = ["VLBranch", "pad_boxes"]

_log = logging.getLogger(__name__)


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
        self.lm = LanguageModel(llm_cfg, dim, vl_cfg.projector_layers, tokenizer, ground_query=vl_cfg.grounding.query)
        self.grounding = GroundingHead(self.lm.hidden_size, dim, vl_cfg.grounding.max_targets)
        # built only when enabled, so the default model's state dict is unchanged
        self.geo_aux = (
            GeoAuxHeads(vl_cfg.geo_aux, self.lm.hidden_size, dim, self.lm.num_layers)
            if vl_cfg.geo_aux.enabled
            else None
        )
        self.readout = (
            QuestionReadout(self.lm.hidden_size, vl_cfg.readout.num_tokens, vl_cfg.readout.hops)
            if vl_cfg.readout.enabled
            else None
        )
        self._warned_no_geometry_tokens = False

    # ------------------------------------------------------------------ 3D tokens
    def tokens_3d(self, t_lang: Tensor, geometry: dict[str, Tensor]) -> dict[str, Tensor]:
        """Eq. 3–4 then voxel pooling: ``T_3D = T'_lang + PE(P_v)``, pooled per voxel, capped.

        Returns:
            ``features [B, M, C]``, ``points [B, M, 3]`` (model frame), ``mask [B, M]``, ``counts [B, M]``,
            and the pre-pooling ``patch_points [B, S, P, 3]``, ``patch_valid [B, S, P]`` (plus, with the
            geo_aux camera head, ``frame_features [B, S, C]``: mean of each frame's valid ``T_3D`` tokens, 0 if none).
        """
        for key in ("depth", "extrinsic", "intrinsic"):
            if key not in geometry:
                raise ValueError(f"VLBranch: geometry dict lacks {key!r} (have {sorted(geometry)})")
        if t_lang.ndim != 4 or t_lang.shape[-1] != self.dim:
            raise ValueError(f"VLBranch: T'_lang must be [B, S, P, {self.dim}], got {tuple(t_lang.shape)}")
        points, valid = patch_world_points(
            geometry["depth"],
            geometry["extrinsic"],
            geometry["intrinsic"],
            self.patch_size,
            self.cfg.depth_sample,
            geometry.get("depth_conf"),
            self.cfg.min_confidence,
        )
        if points.shape[:3] != t_lang.shape[:3]:
            h, w = geometry["depth"].shape[-2:]
            raise ValueError(
                f"VLBranch: T'_lang has P = {t_lang.shape[2]} tokens per frame but depth {h}x{w} with patch "
                f"{self.patch_size} gives {points.shape[2]}"
            )
        pe_dtype = next((q.dtype for q in self.pos_embed.parameters()), torch.float32)
        t3d = t_lang + self.pos_embed(points.to(pe_dtype)).to(t_lang.dtype)
        out = voxel_pool(
            t3d.flatten(1, 2), points.flatten(1, 2), valid.flatten(1, 2), self.cfg.voxel_size, self.cfg.max_3d_tokens
        )
        out.update(patch_points=points, patch_valid=valid)
        if self.geo_aux is not None and self.geo_aux.use_camera:
            v = valid.to(t3d.dtype)
            out["frame_features"] = torch.einsum("bspc,bsp->bsc", t3d, v) / v.sum(2, keepdim=True).clamp_min(1)
        return out

    def _extra(self, tokens: dict[str, Tensor], text: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        """Query embeddings ``[B, K, H]`` for the LM (GeoVR-style queries after the 3D tokens, or the readout
        tokens that end the prompt; None when neither is on) and the readout attention ``[B, K, M]`` (or None)."""
        if self.readout is None:
            return self._queries(tokens), None
        states, mask = self.lm.question_states(text, tokens["features"].device)
        projected = self.lm.projector(tokens["features"].to(self.lm.projector[0].weight.dtype))
        readout, attention = self.readout(states, mask, projected.to(states.dtype), tokens["mask"], tokens["points"])
        return readout, attention

    def _localization(self, tokens: dict[str, Tensor], attention: Tensor, batch: dict) -> Tensor:
        """Readout localisation loss on the samples whose records name objects (``batch['object_boxes']``)."""
        boxes = batch.get("object_boxes")
        if boxes is None:
            return attention.sum() * 0.0
        padded, box_mask = pad_boxes(list(boxes), attention.device)
        targets = tokens_in_boxes(
            tokens["points"],
            tokens["mask"],
            padded,
            box_mask,
            batch.get("world_from_model"),
            self.cfg.readout.box_margin,
        )
        return localization_loss(attention, targets)

    def _with_readout(
        self,
        logits: Tensor,
        attention: Tensor,
        tokens: dict[str, Tensor],
        sel: Tensor,
        props: Tensor,
        world_props: Tensor | None,
        wfm: Tensor | None,
    ) -> Tensor:
        """Proposal logits ``[B', Q + 1]`` plus the readout term on the real proposals (not the no-object slot)."""
        boxes = props if world_props is None else world_props
        term = self.readout.proposal_term(attention, tokens["points"][sel], tokens["mask"][sel], boxes, wfm)
        return torch.cat([logits[:, :-1] + term.to(logits.dtype), logits[:, -1:]], dim=1)

    def _queries(self, tokens: dict[str, Tensor]) -> Tensor | None:
        """GeoVR-style query embeddings ``[B, K, H]`` spliced after the 3D tokens (None when geo_aux is off)."""
        if self.geo_aux is None:
            return None
        summary = (
            self.lm.projector(tokens["frame_features"].to(self.lm.projector[0].weight.dtype))
            if self.geo_aux.use_camera
            else None
        )
        return self.geo_aux.queries(tokens["features"].shape[0], summary)

    def _geo_aux_losses(self, tokens: dict[str, Tensor], geometry: dict[str, Tensor], out: dict) -> dict[str, Tensor]:
        """Unweighted auxiliary terms (see :mod:`vl.geo_aux`)."""
        aux = self.geo_aux
        num_frames = tokens["patch_valid"].shape[1]
        vi = out["inputs"]["visual_index"]
        m = tokens["mask"].shape[1]
        states = out["hidden_states"]
        b_tok, l_tok = ((vi >= 0) & (vi < m)).nonzero(as_tuple=True)
        token_states = {}
        for layer in sorted(set(aux.depth_layers) | set(aux.align_layers)):
            h = states[layer]
            token_states[layer] = h.new_zeros(h.shape[0], m, h.shape[-1]).index_put(
                (b_tok, vi[b_tok, l_tok]), h[b_tok, l_tok]
            )
        query_states = None
        k = aux.num_queries(num_frames)
        if k:
            b_q, l_q = (vi >= m).nonzero(as_tuple=True)
            h = states[-1]
            query_states = h.new_zeros(h.shape[0], k, h.shape[-1]).index_put((b_q, vi[b_q, l_q] - m), h[b_q, l_q])
        if aux.use_align and "geometry_tokens" not in geometry and not self._warned_no_geometry_tokens:
            _log.warning("vl.geo_aux: the geometry dict has no 'geometry_tokens'; the alignment loss is skipped")
            self._warned_no_geometry_tokens = True
        pred = aux.predict(token_states, query_states, num_frames)
        target = aux.targets(geometry, tokens, self.cfg.voxel_size, self.cfg.max_3d_tokens)
        return aux.losses(pred, target, tokens["mask"])

    @staticmethod
    def _anchor(tokens: dict[str, Tensor]) -> Tensor:
        m = tokens["mask"][..., None].to(tokens["points"].dtype)
        return (tokens["points"] * m).sum(1) / m.sum(1).clamp_min(1)

    def _to_model(self, boxes: list[Tensor], world_from_model: Tensor | None) -> list[Tensor]:
        if world_from_model is None:
            return [b.reshape(-1, 6).float() for b in boxes]
        return [
            boxes_in_model_frame(b.reshape(-1, 6).float(), world_from_model[i].float()) for i, b in enumerate(boxes)
        ]

    @staticmethod
    def _world_pooling(
        proposals: list[Tensor], world_from_model: Tensor | None, device
    ) -> tuple[Tensor, Tensor] | None:
        """Padded aligned-world proposals ``[B, Q, 6]`` and ``world_from_model [B, 4, 4]`` for world-frame
        pooling, or None when the pose is unknown (proposals are then model-frame AABBs, pooled there)."""
        if world_from_model is None:
            return None
        world_props, _ = pad_boxes([p.reshape(-1, 6).float() for p in proposals], device)
        return world_props, world_from_model.to(device=device, dtype=torch.float32)

    # ------------------------------------------------------------------ training
    def forward(self, t_lang: Tensor, geometry: dict[str, Tensor], batch: dict) -> dict[str, Tensor]:
        """Teacher-forced pass with losses.

        Returns:
            ``loss`` (weighted total), its parts (``lm``, ``l1``, ``giou``, ``objectness``,
            ``proposal``; with the readout ``localization``; with geo_aux ``geo_camera``, ``geo_depth``, ``geo_scale``, ``geo_align``),
            ``answer_logits``, ``ground_state``, ``num_3d_tokens [B]``.
        """
        tokens = self.tokens_3d(t_lang, geometry)
        text = batch.get("text")
        if text is None:  # compatibility path: raw strings, tokenised here (training encodes them in the collate)
            text = self.lm.processor(list(batch["prompts"]), list(batch["answers"]))
        extra, attention = self._extra(tokens, text)
        out = self.lm(
            tokens["features"],
            tokens["mask"],
            text,
            extra=extra,
            output_hidden_states=self.geo_aux is not None and self.geo_aux.needs_all_layers,
            extra_at_end=self.readout is not None,
        )
        if "hidden_states" not in out and self.geo_aux is not None:
            out["hidden_states"] = (out["hidden"],)
        sel = out["has_ground"]
        # every grounding (and geo_aux) parameter joins the graph (zero-weighted) so DDP sees no unused parameters
        extra_params = list(self.geo_aux.parameters()) if self.geo_aux is not None else []
        zero = zero_graph_term([*self.grounding.parameters(), *extra_params])
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
                    raise ValueError(
                        f"VLBranch: sample {i} has {int(pmask[i].sum())} proposals but {pos.numel()} proposal_positives"
                    )
                positives[i, : pos.numel()] = pos
            if bool(sel.any()):
                world = self._world_pooling(batch["proposals"], wfm, t_lang.device)
                logits = self.grounding.score_proposals(
                    out["ground_state"][sel],
                    tokens["features"][sel],
                    tokens["points"][sel],
                    tokens["mask"][sel],
                    props[sel],
                    pmask[sel],
                    *(None, None) if world is None else (world[0][sel], world[1][sel]),
                )
                if attention is not None and self.cfg.readout.score_proposals:
                    logits = self._with_readout(
                        logits,
                        attention[sel],
                        tokens,
                        sel,
                        props[sel],
                        None if world is None else world[0][sel],
                        None if world is None else world[1][sel],
                    )
                terms["proposal"] = self.grounding.proposal_loss(logits, positives[sel] & pmask[sel])
            else:
                terms["proposal"] = zero
        if attention is not None and self.cfg.readout.localization_weight > 0:
            terms["localization"] = self._localization(tokens, attention, batch)
        losses = combine_vl_losses(out["lm_loss"], terms, self.cfg)
        losses["loss"] = losses["loss"] + zero
        if self.geo_aux is not None:
            geo = self._geo_aux_losses(tokens, geometry, out)
            losses.update(geo)
            losses["loss"] = losses["loss"] + self.geo_aux.weighted_total(geo)
        return {
            **losses,
            "answer_logits": out["answer_logits"],
            "ground_state": out["ground_state"],
            "num_3d_tokens": tokens["mask"].sum(1),
        }

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(
        self, t_lang: Tensor, geometry: dict[str, Tensor], prompts, max_new_tokens: int | None = None
    ) -> list[str]:
        """Greedy answers (B strings) for B prompts: the processor output (``lm.processor(prompts)``) or B
        strings (compatibility path, tokenised here)."""
        tokens = self.tokens_3d(t_lang, geometry)
        text = self.lm.encode_text(prompts)
        extra, _ = self._extra(tokens, text)
        return self.lm.generate(
            tokens["features"], tokens["mask"], text, max_new_tokens, extra=extra, extra_at_end=self.readout is not None
        )["text"]

    @torch.no_grad()
    def ground(
        self,
        t_lang: Tensor,
        geometry: dict[str, Tensor],
        prompts,
        proposals: list[Tensor] | None = None,
        world_from_model: Tensor | None = None,
    ) -> dict:
        """Predict boxes for grounding prompts (the answer is forced to ``<ground>``).

        Args:
            prompts: the processor output with the forced answers (``lm.processor.grounding(descriptions)``), or
                B grounding prompt strings (compatibility path, tokenised here with the answer ``<ground>``).
            proposals: optional B tensors ``[Q_b, 6]`` (aligned world if ``world_from_model`` is given).
        Returns:
            ``boxes [B, T, 6]`` and ``scores [B, T]`` (regressed slots, objectness probability, frame as
            below), ``selected [B, T]`` (slots above ``grounding.score_threshold`` plus the best one:
            the multi-target prediction), ``box [B, 6]`` (the prediction: the chosen proposal if proposals were given and
            one was chosen, else the best regressed slot), ``proposal_index [B]`` (−1 = none / no
            object), ``proposal_best [B]`` (the highest-scoring real proposal, −1 without proposals:
            the prediction for queries known to have a target). Boxes are in the aligned world when ``world_from_model`` is given, else the model frame.
        """
        tokens = self.tokens_3d(t_lang, geometry)
        text = prompts if is_encoded(prompts) else self.lm.processor(list(prompts), [GROUNDING_ANSWER] * len(prompts))
        extra, attention = self._extra(tokens, text)
        out = self.lm(tokens["features"], tokens["mask"], text, extra=extra, extra_at_end=self.readout is not None)
        boxes, logits = self.grounding.regress(out["ground_state"], self._anchor(tokens))
        scores = logits.sigmoid()
        top = scores.argmax(-1)
        selected = scores > self.cfg.grounding.score_threshold
        selected[torch.arange(boxes.shape[0], device=boxes.device), top] = True
        best = boxes[torch.arange(boxes.shape[0], device=boxes.device), top]
        choice = torch.full((boxes.shape[0],), -1, dtype=torch.long, device=boxes.device)
        proposal_best = choice.clone()
        if world_from_model is not None:
            boxes = torch.stack(
                [boxes_in_world_frame(boxes[i], world_from_model[i].float()) for i in range(boxes.shape[0])]
            )
            best = torch.stack(
                [boxes_in_world_frame(best[i : i + 1], world_from_model[i].float())[0] for i in range(best.shape[0])]
            )
        if proposals is not None and self.cfg.grounding.mode in ("both", "proposal"):
            props, pmask = pad_boxes(self._to_model(list(proposals), world_from_model), t_lang.device)
            world = self._world_pooling(proposals, world_from_model, t_lang.device)
            plogits = self.grounding.score_proposals(
                out["ground_state"],
                tokens["features"],
                tokens["points"],
                tokens["mask"],
                props,
                pmask,
                *(None, None) if world is None else world,
            )
            if attention is not None and self.cfg.readout.score_proposals:
                every = torch.ones(plogits.shape[0], dtype=torch.bool, device=plogits.device)
                plogits = self._with_readout(
                    plogits, attention, tokens, every, props, *(None, None) if world is None else world
                )
            choice = self.grounding.select(plogits)
            if plogits.shape[1] > 1:  # the best real proposal, ignoring "no object" (queries known to have a target)
                proposal_best = plogits[:, :-1].argmax(-1)
            world_props, _ = pad_boxes([p.reshape(-1, 6).float() for p in proposals], t_lang.device)
            chosen = world_props[torch.arange(choice.shape[0], device=choice.device), choice.clamp_min(0)]
            best = torch.where((choice >= 0)[:, None], chosen, best)
        return {
            "boxes": boxes,
            "scores": scores,
            "selected": selected,
            "box": best,
            "proposal_index": choice,
            "proposal_best": proposal_best,
        }
