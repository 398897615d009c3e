"""The semantic teacher: a tiny CLIP-style image/text model trained contrastively on the synthetic
scenes — each frame paired with the name (``"<colour> <category>"``) of an object it shows — whose
vision tower is the stage-1 semantic teacher.

* Text side: a word-level tokenizer (:func:`vl.tokenizer.build_word_tokenizer`) over the object
  names of the scenes, and a transformers ``CLIPTextModel`` tower.
* Vision side: a transformers ``CLIPVisionModel`` tower on the frames (shorter side resized to
  ``vision_image_size``, sides multiples of the patch size, position embeddings interpolated).
* Loss: the symmetric InfoNCE of CLIP over a batch of frames and their captions (a frame's
  caption is drawn among the objects covering at least ``min_object_fraction`` of it, weighted by
  visible area).
* Held-out figure: image→text accuracy — the fraction of validation frames whose best-scoring
  name, among all names of the validation scenes, is one of the objects the frame shows — next to
  chance (the mean share of candidate names that a frame shows).

Output (``<out>/``): ``save_pretrained`` of the ``CLIPModel`` (loadable as a ``CLIPVisionModel``
by :func:`vidllm.training.teachers.load_semantic_teacher`), its tokenizer, and ``meta.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidllm.io import atomic_write
from vidllm.teachers.config import TeacherTrainConfig
from vidllm.teachers.loop import train_loop
from vidllm.teachers.scenes import SceneFrames, load_split_scenes, object_pixel_counts
from vidllm.training.teachers import clip_pixel_values

__all__ = ["visible_objects", "build_clip_model", "evaluate_semantic", "train_semantic_teacher", "SEMANTIC_DIR"]

SEMANTIC_DIR = "semantic"


def visible_objects(scene: SceneFrames, min_fraction: float) -> Tensor:
    """``[F, O]`` visible-pixel weights of each object in each frame, zero below ``min_fraction`` of the image."""
    counts = object_pixel_counts(scene).double()
    pixels = scene.images.shape[-2] * scene.images.shape[-1]
    return torch.where(counts >= min_fraction * pixels, counts, torch.zeros_like(counts))


def build_clip_model(tcfg: TeacherTrainConfig, tokenizer):
    """A freshly initialised tiny ``CLIPModel`` sized by ``tcfg``."""
    from transformers import CLIPConfig, CLIPModel

    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": tcfg.text_hidden,
        "intermediate_size": 4 * tcfg.text_hidden,
        "num_hidden_layers": tcfg.text_layers,
        "num_attention_heads": tcfg.text_heads,
        "max_position_embeddings": tcfg.text_max_length,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision = {
        "hidden_size": tcfg.vision_hidden,
        "intermediate_size": 4 * tcfg.vision_hidden,
        "num_hidden_layers": tcfg.vision_layers,
        "num_attention_heads": tcfg.vision_heads,
        "image_size": tcfg.vision_image_size,
        "patch_size": tcfg.vision_patch,
    }
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=tcfg.projection_dim))


def _encode_text(model, tokenizer, names: list[str], max_length: int) -> Tensor:
    tok = tokenizer(names, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    ids = tok["input_ids"]
    # CLIP pools the text at the highest token id (its EOS); ours pools at the EOS position explicitly.
    out = model.text_model(input_ids=ids, attention_mask=tok["attention_mask"])
    eos = (ids == tokenizer.eos_token_id).int().argmax(dim=-1)
    pooled = out.last_hidden_state[torch.arange(ids.shape[0]), eos]
    return F.normalize(model.text_projection(pooled), dim=-1)


def _encode_images(model, pixels: Tensor) -> Tensor:
    out = model.vision_model(pixel_values=pixels, interpolate_pos_encoding=True)
    return F.normalize(model.visual_projection(out.pooler_output), dim=-1)


@torch.no_grad()
def evaluate_semantic(model, tokenizer, scenes: list[SceneFrames], tcfg: TeacherTrainConfig) -> dict[str, float]:
    """Image→text accuracy over all names of ``scenes`` and its chance level (see the module docstring)."""
    names = sorted({n for s in scenes for n in s.object_names})
    text = _encode_text(model, tokenizer, [_caption(n, tokenizer) for n in names], tcfg.text_max_length)
    index = {n: i for i, n in enumerate(names)}
    correct, chance, total = 0.0, 0.0, 0
    for scene in scenes:
        vis = visible_objects(scene, tcfg.min_object_fraction) > 0
        keep = vis.any(dim=1)
        if not bool(keep.any()):
            continue
        shown = torch.zeros(int(keep.sum()), len(names), dtype=torch.bool)
        for j, name in enumerate(scene.object_names):
            shown[:, index[name]] |= vis[keep, j]
        pixels = clip_pixel_values(scene.images[keep], tcfg.vision_image_size, tcfg.vision_patch)
        scores = _encode_images(model, pixels) @ text.T
        best = scores.argmax(dim=-1)
        correct += float(shown[torch.arange(best.shape[0]), best].sum())
        chance += float((shown.sum(dim=1).double() / len(names)).sum())
        total += int(best.shape[0])
    return {"i2t_acc": correct / max(total, 1), "chance": chance / max(total, 1), "frames": float(total)}


def _caption(name: str, tokenizer) -> str:
    return f"{tokenizer.bos_token} a {name} {tokenizer.eos_token}"


def train_semantic_teacher(
    data_root: str | Path,
    out_dir: str | Path,
    image_size: int,
    tcfg: TeacherTrainConfig | None = None,
    log: Callable[[str], None] = print,
    resize_side: str = "shorter",
) -> dict:
    """Train, evaluate and save the semantic teacher; returns the meta dict written to ``meta.json``."""
    from vl.tokenizer import build_word_tokenizer

    tcfg = tcfg or TeacherTrainConfig()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    train_scenes = load_split_scenes(data_root, "train", image_size, resize_side, require_objects=True)
    val_scenes = load_split_scenes(data_root, "val", image_size, resize_side, require_objects=True)
    names = sorted({n for s in train_scenes + val_scenes for n in s.object_names})
    tokenizer = build_word_tokenizer([f"a {n}" for n in names])
    torch.manual_seed(tcfg.seed)
    model = build_clip_model(tcfg, tokenizer)
    frames, captions = [], []
    for scene in train_scenes:
        vis = visible_objects(scene, tcfg.min_object_fraction)
        for f in torch.nonzero(vis.sum(dim=1) > 0).flatten().tolist():
            frames.append((scene, f))
            captions.append(vis[f].numpy())
    if not frames:
        raise ValueError(f"{data_root}: no training frame shows an object (semantic teacher)")
    rng = np.random.default_rng([tcfg.seed, 2])
    model.eval()
    untrained = evaluate_semantic(model, tokenizer, val_scenes, tcfg)
    log(f"[semantic teacher] untrained: held-out image→text accuracy {untrained['i2t_acc']:.3f} (chance {untrained['chance']:.3f})")

    def step_loss(_step: int) -> dict[str, Tensor]:
        picks = rng.choice(len(frames), size=min(tcfg.semantic_batch, len(frames)), replace=False)
        images, texts = [], []
        for i in picks:
            scene, f = frames[i]
            weights = captions[i] / captions[i].sum()
            texts.append(_caption(scene.object_names[rng.choice(len(weights), p=weights)], tokenizer))
            images.append(scene.images[f])
        img = _encode_images(model, clip_pixel_values(torch.stack(images), tcfg.vision_image_size, tcfg.vision_patch))
        txt = _encode_text(model, tokenizer, texts, tcfg.text_max_length)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        # several frames may share a caption: every frame whose caption equals column j is a positive
        same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32)
        targets = same / same.sum(dim=1, keepdim=True)
        loss = 0.5 * (torch.sum(-targets * logits.log_softmax(dim=1), dim=1).mean() + torch.sum(-targets * logits.T.log_softmax(dim=1), dim=1).mean())
        return {"loss": loss}

    history = train_loop(
        model, step_loss, lambda: evaluate_semantic(model, tokenizer, val_scenes, tcfg),
        max_steps=tcfg.semantic_steps, minutes=tcfg.semantic_minutes, lr=tcfg.semantic_lr, weight_decay=tcfg.semantic_weight_decay,
        warmup=tcfg.semantic_warmup, grad_clip=tcfg.grad_clip, eval_every=tcfg.eval_every, name="semantic", log=log,
    )
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    final = {k: v for k, v in history["evals"][-1].items() if k not in ("step", "seconds", "train_loss")}
    meta = {
        "format": "clip",
        "names": names,
        "steps": history["steps"],
        "train_seconds": round(history["seconds"], 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "first_loss": history["losses"][0],
        "final_loss": float(np.mean(history["losses"][-min(20, len(history["losses"])):])),
        "loss_curve": history["losses"],
        "held_out": {"untrained": untrained, "trained": final, "history": history["evals"]},
        "config": asdict(tcfg),
    }
    with atomic_write(out_dir / "meta.json", "w") as handle:
        handle.write(json.dumps(meta, indent=1))
    return meta
