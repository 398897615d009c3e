"""Parameter and memory accounting of a config's model, built on the meta device (no weights, no files).

``vidllm config CONFIG --params`` prints, for the model a config describes (paper scale included):

* parameters per top-level module (``encoder``, ``cta``, ``aggregator``, ``camera_head``, ``depth_head``,
  ``metric_depth``, ``vl``) and, in stage 1, the frozen teachers and the trainable distillation heads;
* trainable and frozen parameters per stage (:func:`vidllm.training.stages.apply_stage`);
* bytes of weights, gradients and AdamW state (two moments per trainable parameter) per stage at 4 bytes
  (fp32) and 2 bytes (bf16) per value. Activations are not included: they depend on frames, resolution,
  batch size and activation checkpointing (``benchmarks/bench_paper_gpu.py`` measures them on a GPU).

The model is built as the training code builds it, under ``torch.device("meta")``. Checkpoint paths are
never read except a local ``config.json`` (``llm.path``, ``train.distill.semantic_teacher``) whose sizes
are then used; without it the LLM comes from the ``llm.*`` sizes (``llm.vocab_size``,
``llm.tie_word_embeddings`` included) and the semantic teacher is CLIP ViT-L/14-336 (the paper's).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vidllm.config import VidLLMConfig

__all__ = ["ParamReport", "build_meta_model", "meta_teachers", "param_report", "format_report", "CLIP_L14_336"]

CLIP_L14_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
}
"""Sizes of CLIP ViT-L/14-336 (the paper's semantic teacher) used when the teacher directory is not present."""

_LLM_KEYS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "num_key_value_heads": "num_kv_heads",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "tie_word_embeddings": "tie_word_embeddings",
}
PRECISIONS = {"fp32": 4, "bf16": 2}
ADAM_STATES = 2


def _local_json(path: str | None) -> dict | None:
    if not path or not (Path(path) / "config.json").is_file():
        return None
    return json.loads((Path(path) / "config.json").read_text())


def meta_config(cfg: VidLLMConfig) -> tuple[VidLLMConfig, list[str]]:
    """``cfg`` with every checkpoint path cleared (sizes of a local LLM ``config.json`` copied into ``llm.*``),
    and notes on where the sizes came from."""
    notes = []
    llm = cfg.llm
    local = _local_json(llm.path)
    if local is not None:
        llm = dataclasses.replace(llm, **{ours: local[theirs] for theirs, ours in _LLM_KEYS.items() if theirs in local})
        notes.append(f"LLM sizes from {llm.path}/config.json")
    elif llm.path:
        notes.append(
            f"llm.path {llm.path!r} not present: LLM built from the llm.* sizes (vocab {llm.vocab_size or 'of the tokenizer'})"
        )
    llm = dataclasses.replace(llm, path=None, tokenizer_path=None)
    encoder = dataclasses.replace(cfg.encoder, pretrained_path=None)
    recon = dataclasses.replace(cfg.recon, vggt_checkpoint=None)
    train = dataclasses.replace(cfg.train, init_from=None)
    return dataclasses.replace(cfg, llm=llm, encoder=encoder, recon=recon, train=train), notes


def build_meta_model(cfg: VidLLMConfig) -> tuple[nn.Module, list[str]]:
    """The :class:`~vidllm.model.VidLLM` of ``cfg`` on the meta device, and notes (see :func:`meta_config`)."""
    from vidllm.model import VidLLM
    from vl.tokenizer import build_word_tokenizer

    mcfg, notes = meta_config(cfg)
    tokenizer = build_word_tokenizer(["a"])  # its few rows are within llm.vocab_size when that is set
    with torch.device("meta"):
        model = VidLLM(mcfg, tokenizer)
    return model, notes


def meta_teachers(cfg: VidLLMConfig) -> tuple[dict[str, nn.Module], list[str]]:
    """The stage-1 teachers of ``cfg`` (``train.distill.teachers``) on the meta device: the geometry teacher is
    a DINOv2 encoder with the student encoder's sizes (VGGT's patch embed); the semantic teacher a CLIP vision tower."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from recon.encoder import SharedEncoder

    teachers, notes = {}, []
    with torch.device("meta"):
        if "geometry" in cfg.train.distill.teachers:
            teachers["geometry"] = SharedEncoder(dataclasses.replace(cfg.encoder, pretrained_path=None))
        if "semantic" in cfg.train.distill.teachers:
            local = _local_json(cfg.train.distill.semantic_teacher)
            sizes = (local.get("vision_config", local) if local else None) or CLIP_L14_336
            if local is None:
                notes.append("semantic teacher not present: CLIP ViT-L/14-336 sizes")
            keys = set(CLIP_L14_336) | {"num_channels"}
            teachers["semantic"] = CLIPVisionModel(CLIPVisionConfig(**{k: v for k, v in sizes.items() if k in keys}))
    return teachers, notes


def _count(params) -> int:
    return sum(p.numel() for p in params)


@dataclass
class ParamReport:
    """Parameter counts of a config's model (see the module docstring)."""

    modules: dict[str, int]
    """Parameters per top-level module of the model."""
    stages: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)
    """``{stage: {module: {"trainable": n, "frozen": n}}}``; stage 1 adds ``teachers`` and ``distill_heads``."""
    notes: list[str] = field(default_factory=list)

    def totals(self, stage: int) -> tuple[int, int]:
        """(trainable, frozen) parameters of ``stage``."""
        rows = self.stages[stage].values()
        return sum(r["trainable"] for r in rows), sum(r["frozen"] for r in rows)

    def memory(self, stage: int, bytes_per_value: int) -> dict[str, int]:
        """Bytes of weights (all parameters), gradients (trainable) and AdamW state (2 × trainable) in ``stage``."""
        trainable, frozen = self.totals(stage)
        out = {
            "weights": (trainable + frozen) * bytes_per_value,
            "gradients": trainable * bytes_per_value,
            "optimizer": ADAM_STATES * trainable * bytes_per_value,
        }
        out["total"] = sum(out.values())
        return out


def param_report(cfg: VidLLMConfig) -> ParamReport:
    """Count the parameters of ``cfg``'s model on the meta device, per module and per stage."""
    from vidllm.training.stages import apply_stage

    model, notes = build_meta_model(cfg)
    modules: dict[str, int] = {}
    for name, p in model.named_parameters():
        top = name.split(".", 1)[0]
        modules[top] = modules.get(top, 0) + p.numel()
    report = ParamReport(modules=modules, notes=notes)
    for stage in (1, 2):
        apply_stage(model, stage, cfg.llm.finetune)
        rows: dict[str, dict[str, int]] = {}
        for name, p in model.named_parameters():
            row = rows.setdefault(name.split(".", 1)[0], {"trainable": 0, "frozen": 0})
            row["trainable" if p.requires_grad else "frozen"] += p.numel()
        if stage == 1:
            teachers, teacher_notes = meta_teachers(cfg)
            report.notes += teacher_notes
            rows["teachers"] = {"trainable": 0, "frozen": _count(p for t in teachers.values() for p in t.parameters())}
            widths = {
                n: (t.config.hidden_size if hasattr(t, "config") else cfg.encoder.hidden_size)
                for n, t in teachers.items()
            }
            heads = sum(cfg.encoder.hidden_size * w + w for w in widths.values())  # one Linear(C → teacher width) each
            rows["distill_heads"] = {"trainable": heads, "frozen": 0}
        report.stages[stage] = rows
    return report


def _fmt(n: int) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def format_report(report: ParamReport, source: str) -> str:
    """The report as the text ``vidllm config --params`` prints."""
    lines = [f"# parameters of {source} (built on the meta device: no weights allocated, nothing read)"]
    lines += [f"# note: {n}" for n in report.notes]
    lines.append("")
    lines.append(f"{'module':16s} {'parameters':>16s} {'':>10s}")
    total = sum(report.modules.values())
    for name, n in report.modules.items():
        lines.append(f"{name:16s} {n:>16,d} {_fmt(n):>10s}")
    lines.append(f"{'model total':16s} {total:>16,d} {_fmt(total):>10s}")
    for stage, rows in report.stages.items():
        lines.append("")
        lines.append(f"stage {stage}: {'module':14s} {'trainable':>16s} {'frozen':>16s}")
        for name, row in rows.items():
            lines.append(f"         {name:14s} {row['trainable']:>16,d} {row['frozen']:>16,d}")
        trainable, frozen = report.totals(stage)
        lines.append(
            f"         {'total':14s} {trainable:>16,d} {frozen:>16,d}   ({_fmt(trainable)} trainable, {_fmt(frozen)} frozen)"
        )
    lines.append("")
    lines.append("memory of weights + gradients + AdamW state (2 moments), activations excluded:")
    lines.append(
        f"{'stage':6s} {'precision':10s} {'weights':>12s} {'gradients':>12s} {'optimizer':>12s} {'total':>12s}"
    )
    for stage in report.stages:
        for precision, size in PRECISIONS.items():
            mem = report.memory(stage, size)
            lines.append(
                f"{stage:<6d} {precision:10s} "
                + " ".join(f"{_gib(mem[k]):>12s}" for k in ("weights", "gradients", "optimizer", "total"))
            )
    lines.append(
        "(bf16-mixed training keeps fp32 weights, gradients and AdamW state: read the fp32 rows, plus activations)"
    )
    return "\n".join(lines)
