"""The assembled Vid-LLM model (paper Fig. 2): encoder → CTA → reconstruction branch (+ metric
depth and real-scale alignment) and vision–language branch.

``VidLLM`` extends :class:`recon.model.ReconstructionModel` (so the shared encoder, aggregator,
camera head and DPT head keep the VGGT parameter names and load with the VGGT loader) with
``cta``, ``metric_depth`` (optional) and ``vl``. Top-level module names are the optimiser's
parameter groups: ``encoder``, ``cta``, ``aggregator``, ``camera_head``, ``depth_head``,
``metric_depth``, ``vl``.

Gradient flow (paper §3.4): the VL branch receives *detached* geometry, so VL losses reach the
VL branch, the CTA and the encoder, never the aggregator or the reconstruction heads.

:meth:`VidLLM.forward` is the only place that chains the parts (``encode_streams`` →
``reconstruct_streams`` → ``language_stream`` / ``geometry_for_vl`` → ``vl``) and returns a typed
:class:`~vidllm.modeling_outputs.VidLLMOutput`; training, the API, evaluation and the benchmarks call it.

The model is an ``nn.Module`` only (tensors in, tensors out, losses, weights I/O). Decoding videos,
autocast and the result types are :class:`vidllm.api.VidLLMPipeline`'s, which wraps a ``VidLLM``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from cta.factory import build_cta
from recon.alignment import apply_scene_scale, real_scale_alignment
from recon.attention import use_attention_backend
from recon.losses import ReconLoss, metric_depth_loss
from recon.metric_depth import MetricDepthModel
from recon.model import ReconstructionModel
from vidllm.config import VidLLMConfig, load_config, save_config
from vidllm.errors import CheckpointError
from vidllm.io import atomic_dir, load_state_dict, save_safetensors
from vidllm.modeling_outputs import VidLLMOutput
from vl.branch import VLBranch

__all__ = ["VidLLM", "VidLLMOutput", "FUSION_MODES"]

_log = logging.getLogger(__name__)

FUSION_MODES = ("add", "xattn_fusion")
"""CTA modes of the fusion baselines: the language stream is fused with the aggregator's
geometry tokens (VG-LLM / VLM-3R style) after the reconstruction branch has run."""


class VidLLM(ReconstructionModel):
    """Vid-LLM built from a :class:`~vidllm.config.VidLLMConfig`.

    Args:
        config: the full config.
        tokenizer: a tokenizer for a freshly built LLM (``config.llm.path`` None); ignored when the
            LLM is loaded from a directory.
    """

    def __init__(self, config: VidLLMConfig, tokenizer=None) -> None:
        super().__init__(config.encoder, config.recon)
        self.config = config
        dim = config.encoder.hidden_size
        cta_cfg = config.cta
        if cta_cfg.mode in FUSION_MODES and cta_cfg.geometry_dim == 0:
            cta_cfg = dataclasses.replace(
                cta_cfg, geometry_dim=2 * dim
            )  # aggregator tokens are [frame; global] = 2C wide
        self.cta = build_cta(cta_cfg, dim)
        md = config.metric_depth
        self.metric_depth = MetricDepthModel(md, dim, config.encoder.patch_size) if md.enabled else None
        if md.enabled and len(config.encoder.intermediate_layers) != 4:
            raise ValueError(
                f"encoder.intermediate_layers must name 4 blocks for the metric depth model, got {config.encoder.intermediate_layers}"
            )
        self.vl = VLBranch(config.vl, config.llm, dim, config.encoder.patch_size, tokenizer)
        self.recon_loss = ReconLoss(config.recon.loss)
        # per-model backend (every attention module of this model), never the process default
        use_attention_backend(self, config.attention_backend)

    # ------------------------------------------------------------------ geometry
    def _check_images(self, images: Tensor) -> Tensor:
        if images.dim() == 4:
            images = images[None]
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"VidLLM: images must be [B, S, 3, H, W] in [0, 1], got shape {tuple(images.shape)}")
        return images

    def encode_streams(self, images: Tensor) -> dict:
        """Encoder + CTA (first step of :meth:`forward`; stage-1 distillation calls it alone). Returns ``t_base``, ``t_geom``, ``t_lang`` ``[B, S, P, C]`` and the encoder's
        ``intermediates`` (``{layer: [B·S, P, C]}``) for the metric depth model."""
        images = self._check_images(images)
        b, s = images.shape[:2]
        layers = list(self.config.encoder.intermediate_layers) if self.metric_depth is not None else []
        enc = self.encoder(images, layers=layers)
        t_base = enc.patch_tokens.reshape(b, s, *enc.patch_tokens.shape[1:])
        if self.config.cta.mode in FUSION_MODES:
            t_geom, t_lang = t_base, None  # the language stream is fused after the aggregator
        else:
            t_geom, t_lang = self.cta(t_base)
        return {
            "t_base": t_base,
            "t_geom": t_geom,
            "t_lang": t_lang,
            "intermediates": enc.intermediates,
            "grid_hw": enc.grid_hw,
        }

    def reconstruct_streams(self, images: Tensor, streams: dict) -> dict:
        """Reconstruction branch on ``T'_geom``, metric depth, real-scale alignment (a step of :meth:`forward`).

        Returns the :meth:`ReconstructionModel.decode` dict plus ``metric_depth [B,S,H,W]`` (if
        enabled), ``scale [B]``, ``frame_scales [B,S]``, and the aligned ``depth_metric``,
        ``extrinsic_metric`` (metres, model frame).
        """
        images = self._check_images(images)
        b, s = images.shape[:2]
        image_hw = tuple(images.shape[-2:])
        out = self.decode(streams["t_geom"], image_hw)
        if self.metric_depth is not None:
            layers = [streams["intermediates"][i] for i in self.config.encoder.intermediate_layers]
            out["metric_depth"] = self.metric_depth(layers, image_hw, s)["metric_depth"]
            al = self.config.metric_depth.alignment
            if al.enabled:
                fit = real_scale_alignment(
                    out["depth"],
                    out["metric_depth"],
                    out["depth_conf"],
                    None,
                    al.num_frames,
                    al.seed,
                    al.min_valid_pixels,
                )
                scale, out["frame_scales"] = fit.scale, fit.frame_scales
            else:
                scale = torch.ones(b, device=images.device, dtype=out["depth"].dtype)
        else:
            scale = torch.ones(b, device=images.device, dtype=out["depth"].dtype)
        scaled = apply_scene_scale(scale, depth=out["depth"], extrinsics=out["extrinsic"])
        out["scale"] = scale
        out["depth_metric"] = scaled["depth"]
        out["extrinsic_metric"] = scaled["extrinsics"]
        return out

    def geometry_for_vl(self, recon: dict) -> dict[str, Tensor]:
        """Detached metric geometry for the 3D patches (one-way gradient); with the GeoVR-style
        alignment enabled also the aggregator's ``geometry_tokens [B, S, P, 2C]`` (its target)."""
        geometry = {
            "depth": recon["depth_metric"].detach(),
            "depth_conf": recon["depth_conf"].detach(),
            "extrinsic": recon["extrinsic_metric"].detach(),
            "intrinsic": recon["intrinsic"].detach(),
        }
        geo_aux = self.config.vl.geo_aux
        if geo_aux.enabled and geo_aux.align_weight > 0:
            geometry["geometry_tokens"] = recon["geometry_tokens"].detach()
        return geometry

    def language_stream(self, streams: dict, recon: dict) -> Tensor:
        """``T'_lang``; for the fusion baselines, fused with the aggregator's geometry tokens now."""
        if streams["t_lang"] is not None:
            return streams["t_lang"]
        geometry_tokens = recon["geometry_tokens"].detach()  # one-way: VL never trains the aggregator
        _, t_lang = self.cta(streams["t_base"], geometry_tokens=geometry_tokens)
        return t_lang

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: Tensor,
        vl_batch: dict | None = None,
        vl_index: list[int] | Tensor | None = None,
        return_vl_inputs: bool = False,
        streams_only: bool = False,
    ) -> VidLLMOutput:
        """The full forward (paper Fig. 2) — the one place that chains the model's parts:
        encoder + CTA (:meth:`encode_streams`) → reconstruction branch, metric depth and real-scale
        alignment (:meth:`reconstruct_streams`) → ``T'_lang`` (:meth:`language_stream`) and the
        detached metric geometry (:meth:`geometry_for_vl`, one-way gradient §3.4) → VL branch.

        Args:
            images: ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) in [0, 1].
            vl_batch: text fields of N VL samples (see :class:`vl.branch.VLBranch`); runs the
                teacher-forced VL pass (losses and logits). None runs no VL pass.
            vl_index: with ``vl_batch``, the clip row (in ``[0, B)``) of each of the N samples; rows
                may repeat or be left out (stage 2 trains VL on some rows only, and on several
                questions per clip). None: sample ``i`` is row ``i`` (N = B).
            return_vl_inputs: also compute ``t_lang`` and ``vl_geometry`` without ``vl_batch`` (the
                inputs of ``vl.generate`` / ``vl.ground`` at inference).
            streams_only: stop after the encoder and the CTA (stage-1 distillation reads only the
                streams ``T_geom`` / ``T_lang``); every other field stays None.
        Returns:
            :class:`~vidllm.modeling_outputs.VidLLMOutput`: the reconstruction fields and ``streams``
            always; ``t_lang``, ``vl_geometry`` with ``vl_batch`` or ``return_vl_inputs``; ``vl`` and
            ``vl_index`` with ``vl_batch``.
        """
        streams = self.encode_streams(images)
        if streams_only:
            return VidLLMOutput(streams=streams)
        recon = self.reconstruct_streams(images, streams)
        out = VidLLMOutput(**recon, streams=streams)
        if vl_batch is None and not return_vl_inputs:
            return out
        out.t_lang = self.language_stream(streams, recon)
        out.vl_geometry = self.geometry_for_vl(recon)
        if vl_batch is not None:
            t_lang, geometry = out.t_lang, out.vl_geometry
            if vl_index is not None:
                t_lang, geometry = t_lang[vl_index], {k: v[vl_index] for k, v in geometry.items()}
                out.vl_index = [int(i) for i in vl_index]
            else:
                out.vl_index = list(range(t_lang.shape[0]))
            out.vl = self.vl(t_lang, geometry, vl_batch)
        return out

    # ------------------------------------------------------------------ losses
    def recon_losses(self, out: VidLLMOutput | dict, gt: dict) -> dict[str, Tensor]:
        """``L_recon`` (camera + depth [+ points]) on the relative outputs and ``L_MD`` (Eq. 9) on metric depth.

        Args:
            out: the output of :meth:`forward` (or a dict with its keys).
            gt: ``depth [B,S,H,W]`` metres (0 invalid), ``extrinsics [B,S,3,4]``, ``intrinsics [B,S,3,3]``.
        """
        losses = dict(self.recon_loss(out, gt))
        if self.metric_depth is not None:
            md = self.config.metric_depth
            l_md = metric_depth_loss(out["metric_depth"], gt["depth"], gt["depth"] > 0, md.loss_alpha, md.loss_eps)
            losses["loss_md"] = l_md
            losses["loss"] = losses["loss"] + md.loss_weight * l_md
        return losses

    # ------------------------------------------------------------------ weights I/O
    def _llm_base_is_external(self) -> bool:
        """True when the LLM's base weights come from ``llm.path`` and are not trained (LoRA / frozen)."""
        return self.config.llm.path is not None and self.config.llm.finetune in ("lora", "frozen")

    def weights_state_dict(self) -> dict[str, Tensor]:
        """The weights :meth:`save_pretrained` writes: everything, except a loaded LLM's frozen base
        weights (those are re-read from ``llm.path``; LoRA adapters are kept)."""
        sd = self.state_dict()
        if self._llm_base_is_external():
            trainable = {n for n, p in self.named_parameters() if p.requires_grad}
            sd = {k: v for k, v in sd.items() if not k.startswith("vl.lm.model.") or k in trainable or "lora_" in k}
        return sd

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.yaml``, ``model.safetensors``, the tokenizer (``tokenizer/``) and, with LoRA,
        the peft adapter (``adapter/``) to ``directory``. Files are written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_config(self.config, directory / "config.yaml")
        save_safetensors(self.weights_state_dict(), directory / "model.safetensors", metadata={"format": "vidllm"})
        with atomic_dir(directory / "tokenizer") as tmp:
            self.vl.lm.tokenizer.save_pretrained(str(tmp))
        if self.config.llm.finetune == "lora":
            with atomic_dir(directory / "adapter") as tmp:
                self.vl.lm.model.save_pretrained(str(tmp))
        return directory

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        strict: bool = True,
        overrides: Sequence[str] = (),
    ) -> VidLLM:
        """Rebuild a model written by :meth:`save_pretrained` (weights via safetensors only), in eval mode.

        Args:
            device: where to put the model (default: CUDA when available, else CPU).
            strict: every weight the model expects must be in the file.
            overrides: dotted ``KEY=VALUE`` changes to the saved ``config.yaml`` applied before the model is built,
                for settings that do not change the weights, e.g. ``recon.aggregator.global_merge_ratio=0.8``
                (token merging for long videos) or ``recon.depth_head.frames_chunk_size=8``; a key that does not
                exist is an error naming it.

        For inference on videos (and a low-precision compute dtype) wrap it:
        :meth:`vidllm.api.VidLLMPipeline.from_pretrained`.
        """
        directory = Path(directory)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if not (directory / "config.yaml").is_file():
            raise CheckpointError(f"{directory}: not a saved vidllm model (no config.yaml)")
        config = load_config(directory / "config.yaml", list(overrides))
        tokenizer = None
        if (directory / "tokenizer").is_dir():
            from vl.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(directory / "tokenizer")
        model = cls(config, tokenizer)
        if not (directory / "model.safetensors").is_file():
            raise CheckpointError(f"{directory}: no model.safetensors beside config.yaml")
        try:
            report = model.load_weights(load_state_dict(directory / "model.safetensors", "cpu"), strict=strict)
        except CheckpointError as err:
            raise CheckpointError(f"{directory / 'model.safetensors'}: {err}") from None
        if report["unexpected"] or (strict and report["missing"]):
            raise CheckpointError(
                f"{directory / 'model.safetensors'}: missing keys {report['missing'][:10]}, unexpected keys {report['unexpected'][:10]}"
            )
        return model.to(device).eval()

    def load_weights(self, state_dict: dict[str, Tensor], strict: bool = False) -> dict[str, list[str]]:
        """Load (a subset of) weights; shape mismatches are errors naming the key and both shapes.

        Returns ``{"missing": [...], "unexpected": [...]}``; keys the model may legitimately lack in
        the file (a loaded LLM's frozen base weights) are not reported as missing.
        """
        own = self.state_dict()
        bad = [
            f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in state_dict.items()
            if k in own and own[k].shape != v.shape
        ]
        if bad:
            raise CheckpointError(f"shape mismatch for {len(bad)} key(s): " + "; ".join(bad[:5]))
        result = self.load_state_dict(state_dict, strict=False)
        expected = set(self.weights_state_dict())
        missing = [k for k in result.missing_keys if k in expected]
        for kind, keys in (("missing", missing), ("unexpected", result.unexpected_keys)):
            if keys:
                _log.warning("%d %s key(s) when loading weights: %s", len(keys), kind, ", ".join(keys[:10]))
        return {"missing": missing, "unexpected": list(result.unexpected_keys)}
