"""The Lightning module of both training stages (Vid-LLM §3.4, Fig. 3).

* Stage 1 — dual-teacher distillation (Eq. 5–7): the student encoder + CTA give ``T'_geom`` and
  ``T'_lang``; linear projections map them to the teachers' widths; the frozen geometry teacher
  (DINOv2 from VGGT) and semantic teacher (CLIP vision) run under ``no_grad`` in eval mode. The
  teachers and projections live on this module, never inside :class:`~vidllm.model.VidLLM`, so
  they are not in the saved model weights; the teachers are not in the optimiser either.
* Stage 2 — joint optimisation (Eq. 8): ``L_recon + L_MD`` on every clip (GT depth and poses come
  with every sample) plus ``L_VL`` on the samples whose task is qa / sqa / grounding / caption.

Batches are the dicts of :mod:`vidllm.data.datamodule`; :func:`vl_batch_from_batch` renders the
prompts and answers for the VL branch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from vidllm.config import VidLLMConfig
from vidllm.errors import ConfigError
from vidllm.model import VidLLM
from vidllm.processing import VL_TASKS, render_record, text_records
from vidllm.training.distill import distillation_loss, geometry_distill_loss, semantic_distill_loss
from vidllm.training.optim import build_optimizer, build_scheduler
from vidllm.training.stages import apply_stage
from vl.losses import zero_graph_term

__all__ = ["VidLLMModule", "vl_batch_from_batch", "VL_TASKS"]

_log = logging.getLogger(__name__)


def _record_boxes(rec: dict, gt_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Target boxes ``[T, 6]`` (aligned world; none unless grounding) and proposal positives ``[N]`` of one text
    record (``rec``: the text keys of a batch row plus unpadded ``target_*``)."""
    grounding = rec["task"] == "grounding"
    positives = torch.isin(gt_ids, rec["target_ids"]) if grounding else torch.zeros_like(gt_ids, dtype=torch.bool)
    return rec["target_boxes"] if grounding else rec["target_boxes"][:0], positives


def vl_batch_from_batch(batch: dict, processor=None) -> tuple[list[int], dict | None]:
    """Indices of the VL samples of a data batch and the text fields :class:`vl.branch.VLBranch` needs.

    Grounding samples carry their targets (aligned world) and every GT object of the scene as
    proposals (positives = the targets); captions are prompted with the target's centre in the
    model frame. ``object_boxes`` are the boxes of the objects each record names (every task; aligned world).
    With ``data.questions_per_clip > 1`` a row also brings ``extra_texts`` (other
    records of its scene on the same clip): each becomes one more VL sample right after its row,
    so the returned index repeats the row (the clip is encoded once, its tokens indexed K times).
    ``text`` is the samples' encoding: the collate's ``vl_text`` when present, else made here with
    ``processor`` (:class:`vl.processing.VidLLMProcessor`) when given, else absent (the branch then
    tokenises the strings itself, the compatibility path).
    """
    index, records = text_records(batch)
    if not index:
        return [], None
    prompts, answers, targets, proposals, positives, tasks, objects = [], [], [], [], [], [], []
    for i, rec in zip(index, records):
        gmask = batch["gt_boxes_mask"][i]
        gt_boxes, gt_ids = batch["gt_boxes"][i][gmask], batch["gt_box_ids"][i][gmask]
        prompt, answer = render_record(rec)
        tboxes, pos = _record_boxes(rec, gt_ids)
        prompts.append(prompt)
        answers.append(answer)
        targets.append(tboxes)
        proposals.append(gt_boxes)
        positives.append(pos)
        tasks.append(rec["task"])
        objects.append(rec["target_boxes"])
    vl_batch = {
        "prompts": prompts,
        "answers": answers,
        "target_boxes": targets,
        "proposals": proposals,
        "proposal_positives": positives,
        "object_boxes": objects,
        "world_from_model": batch["world_from_model"][index],
        "tasks": tasks,
    }
    if "vl_text" in batch:
        vl_batch["text"] = batch["vl_text"]
    elif processor is not None:
        vl_batch["text"] = processor(prompts, answers)
    return index, vl_batch


COMPILED_MODULES = ("encoder", "aggregator", "camera_head", "depth_head", "metric_depth")


def compile_hot_modules(model: nn.Module) -> list[str]:
    """``nn.Module.compile()`` (in place) on the modules that dominate a step; returns their names."""
    names = [n for n in COMPILED_MODULES if getattr(model, n, None) is not None]
    for name in names:
        getattr(model, name).compile()
    return names


class DistillHeads(nn.ModuleDict):
    """The lightweight linear projections of stage 1: one per teacher (student width → teacher width).

    With ``identity_when_equal`` (``train.distill.identity_projection``) a teacher whose width equals
    the student's gets ``nn.Identity`` instead: the student stream ``[N, P, C]`` is distilled as is.
    """

    def __init__(self, dim: int, teacher_widths: dict[str, int], identity_when_equal: bool = False) -> None:
        super().__init__(
            {
                name: nn.Identity() if identity_when_equal and width == dim else nn.Linear(dim, width)
                for name, width in teacher_widths.items()
            }
        )


class VidLLMModule(L.LightningModule):
    """Both training stages of Vid-LLM.

    Args:
        config: the full config (``config.train.stage`` selects the stage).
        tokenizer: tokenizer for a freshly built LLM (``llm.path`` None).
        model: an existing :class:`VidLLM` to train (default: built from ``config``).
    """

    def __init__(self, config: VidLLMConfig, tokenizer=None, model: VidLLM | None = None) -> None:
        super().__init__()
        self.config = config
        self.stage = config.train.stage
        self.model = model if model is not None else VidLLM(config, tokenizer)
        if model is None:
            if config.train.init_from:
                self.load_initial_weights(config.train.init_from)
            elif config.recon.vggt_checkpoint:
                self.load_vggt_initialisation(config.recon.vggt_checkpoint)
        self.trainable = apply_stage(self.model, self.stage, config.llm.finetune)
        if config.train.compile:
            compile_hot_modules(self.model)
        self.teachers = nn.ModuleDict()
        self.distill_heads = None
        if self.stage == 1:
            self._build_teachers()

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        """Stage 2: give the DataModule the LLM's processor, so the collate (in the DataLoader workers) renders and
        tokenises the VL samples' text (``batch['vl_text']``) and no forward tokenises."""
        trainer = getattr(self, "_trainer", None)
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if self.stage == 2 and dm is not None and hasattr(dm, "processor") and dm.processor is None:
            dm.processor = self.model.vl.lm.processor

    def _build_teachers(self) -> None:
        from vidllm.training.frozen_teachers import load_geometry_teacher, load_semantic_teacher

        d = self.config.train.distill
        paths = {"geometry": d.geometry_teacher, "semantic": d.semantic_teacher}
        for name in d.teachers:
            key, value = f"{name}_teacher", paths[name]
            if not value:
                raise ConfigError(
                    f"stage 1 needs train.distill.{key} (geometry: VGGT model.pt or DINOv2 dir; semantic: CLIP dir)"
                )
            if not Path(value).exists():
                raise ConfigError(
                    f"train.distill.{key} = {value!r} does not exist; point it at real teacher weights, or make the tiny "
                    f"synthetic-data teachers with `vidllm teachers --out outputs/teachers`"
                )
        if "geometry" in d.teachers:
            self.teachers["geometry"] = load_geometry_teacher(d.geometry_teacher, self.config.encoder)
        if "semantic" in d.teachers:
            self.teachers["semantic"] = load_semantic_teacher(d.semantic_teacher)
        dim = self.config.encoder.hidden_size
        widths = {name: teacher.hidden_size for name, teacher in self.teachers.items()}
        self.distill_heads = DistillHeads(dim, widths, d.identity_projection)

    def load_initial_weights(self, path: str) -> None:
        """Weights only (``train.init_from``): a ``save_pretrained`` directory, a ``.safetensors`` file or a Lightning ``.ckpt``."""
        from vidllm.io import load_state_dict, strip_prefix

        p = Path(path)
        if p.is_dir():
            p = p / "model.safetensors"
        sd = load_state_dict(p)
        if any(k.startswith("model.") for k in sd):  # a Lightning checkpoint of this module
            sd = strip_prefix(sd, "model.")
        report = self.model.load_weights(sd)
        _log.info(
            "initialised from %s (%d missing, %d unexpected keys)",
            path,
            len(report["missing"]),
            len(report["unexpected"]),
        )

    def load_vggt_initialisation(self, path: str) -> None:
        """Initialise the shared encoder and the reconstruction branch from a VGGT checkpoint
        (``recon.vggt_checkpoint``; used when there is no ``train.init_from``)."""
        from recon.vggt_loader import load_vggt_weights
        from vidllm.errors import CheckpointError
        from vidllm.io import load_state_dict

        if not Path(path).is_file():
            raise CheckpointError(
                f"recon.vggt_checkpoint = {path!r} does not exist; point it at a VGGT model.pt, set it to null, or make the "
                f"tiny synthetic teachers with `vidllm teachers --out outputs/teachers`"
            )
        report = load_vggt_weights(self.model, load_state_dict(path), strict=False)
        _log.info(
            "initialised encoder + reconstruction branch from %s (%d missing, %d unexpected keys)",
            path,
            len(report.missing),
            len(report.unexpected),
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Teachers are frozen copies of files on disk: keep them out of checkpoints.
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("teachers.")}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        own = self.state_dict()
        checkpoint["state_dict"].update({k: v for k, v in own.items() if k.startswith("teachers.")})

    def configure_optimizers(self):
        t = self.config.train
        optimizer = build_optimizer(self.model, t.lr, t.weight_decay, t.betas, t.lr_multipliers)
        head_params = list(self.distill_heads.parameters()) if self.distill_heads is not None else []
        if head_params:  # none when every teacher is distilled without projection
            optimizer.add_param_group(
                {"name": "distill_heads", "params": head_params, "lr": t.lr, "weight_decay": t.weight_decay}
            )
        # The schedule's length is train.max_steps (the run's plan), not the Trainer's stopping step,
        # so a run stopped early and resumed follows the same learning-rate curve.
        scheduler = build_scheduler(optimizer, t.warmup_steps, t.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ steps
    def stage1_losses(self, batch: dict) -> dict[str, Tensor]:
        images = batch["images"]
        streams = self.model(images, streams_only=True).streams
        b, s, p, c = streams["t_geom"].shape
        t_geom = streams["t_geom"].reshape(b * s, p, c)
        t_lang = (streams["t_lang"] if streams["t_lang"] is not None else streams["t_base"]).reshape(b * s, p, c)
        if len(self.teachers) == 2:
            tea_geo = self.teachers["geometry"](images)
            tea_lang, tea_grid = self.teachers["semantic"](images)
            return distillation_loss(
                self.distill_heads["geometry"](t_geom),
                self.distill_heads["semantic"](t_lang),
                t_geom,
                t_lang,
                tea_geo.to(t_geom.dtype),
                tea_lang.to(t_geom.dtype),
                streams["grid_hw"],
                tea_grid,
                self.config.train.distill.lambda_sc,
            )
        # one-teacher ablation: only that teacher's term (L_sc compares both streams with both teachers)
        if "geometry" in self.teachers:
            geo = geometry_distill_loss(
                self.distill_heads["geometry"](t_geom), self.teachers["geometry"](images).to(t_geom.dtype)
            )
            return {"loss": geo, "geo": geo}
        tea_lang, _ = self.teachers["semantic"](images)
        lang = semantic_distill_loss(self.distill_heads["semantic"](t_lang), tea_lang.to(t_lang.dtype))
        return {"loss": lang, "lang": lang}

    def stage2_losses(self, batch: dict) -> dict[str, Tensor]:
        """Eq. 8: ``L_recon + L_MD`` on every clip plus ``L_VL`` on the VL samples, from one :meth:`VidLLM.forward`
        (the VL pass reads ``T'_lang`` and the detached geometry of the rows ``vl_index``)."""
        index, vl_batch = vl_batch_from_batch(
            batch, self.model.vl.lm.processor
        )  # text encoded here unless the collate did
        out = self.model(batch["images"], vl_batch, vl_index=index if vl_batch is not None else None)
        gt = {"depth": batch["depth"], "extrinsics": batch["extrinsics"], "intrinsics": batch["intrinsics"]}
        losses = {f"recon/{k}": v for k, v in self.model.recon_losses(out, gt).items()}
        total = losses["recon/loss"]
        if out.vl is not None:
            losses.update({f"vl/{k}": v for k, v in out.vl.items() if torch.is_tensor(v) and v.ndim == 0})
            total = total + out.vl["loss"]
        else:  # a recon-only batch: keep every trainable VL parameter in the graph (DDP requires it)
            total = total + zero_graph_term(p for p in self.model.vl.parameters() if p.requires_grad)
        losses["loss"] = total
        return losses

    def _step(self, batch: dict, split: str) -> Tensor:
        losses = self.stage1_losses(batch) if self.stage == 1 else self.stage2_losses(batch)
        bs = batch["images"].shape[0]
        self.log(f"{split}/loss", losses["loss"], prog_bar=True, batch_size=bs, sync_dist=split != "train")
        for key, value in losses.items():
            if key != "loss":
                self.log(f"{split}/{key}", value.detach(), batch_size=bs, sync_dist=split != "train")
        return losses["loss"]

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        out = self.model(batch["images"])
        return {
            k: getattr(out, k)
            for k in ("pose_enc", "depth_metric", "depth_conf", "extrinsic_metric", "intrinsic", "scale")
        }
