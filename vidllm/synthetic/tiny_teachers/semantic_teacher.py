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
* Dense term (``semantic_dense_weight`` > 0): the patch tokens of the feature layer that stage 1
  distils (:data:`~vidllm.training.frozen_teachers.SEMANTIC_FEATURE_LAYER`) pass a linear head into the
  shared embedding space and are classified among the names of the batch's objects; a patch's
  target is the object covering most of it (:func:`~vidllm.synthetic.tiny_teachers.scenes.patch_object_labels`).
  Real CLIP patch tokens carry the category of what they show; the frame-level loss alone does not
  teach that to a tiny tower, and the 3D tokens then cannot tell which object they belong to.
* Held-out figures: image→text accuracy — the fraction of validation frames whose best-scoring
  name, among all names of the validation scenes, is one of the objects the frame shows — next to
  chance (the mean share of candidate names that a frame shows); with the dense term, the patch
  accuracy over all names and over categories (a patch's best name has its object's category).

Output (``<out>/``): ``save_pretrained`` of the ``CLIPModel`` (loadable as a ``CLIPVisionModel``
by :func:`vidllm.training.frozen_teachers.load_semantic_teacher`), its tokenizer, and ``meta.json``.
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
from torch import Tensor, nn

from vidllm.io import atomic_write
from vidllm.synthetic.tiny_teachers.loop import train_loop
from vidllm.synthetic.tiny_teachers.scenes import (
    SceneFrames,
    load_split_scenes,
    object_pixel_counts,
    patch_object_labels,
    pixel_object_index,
)
from vidllm.synthetic.tiny_teachers.teacher_config import TeacherTrainConfig
from vidllm.training.frozen_teachers import SEMANTIC_FEATURE_LAYER, clip_input_size, clip_pixel_values

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


def _encode_images(model, pixels: Tensor, dense_head: nn.Module | None = None) -> tuple[Tensor, Tensor | None]:
    """Frame embeddings ``[N, D]`` and, with ``dense_head``, patch embeddings ``[N, P, D]`` of the feature layer."""
    out = model.vision_model(
        pixel_values=pixels, output_hidden_states=dense_head is not None, interpolate_pos_encoding=True
    )
    frames = F.normalize(model.visual_projection(out.pooler_output), dim=-1)
    if dense_head is None:
        return frames, None
    return frames, F.normalize(dense_head(out.hidden_states[SEMANTIC_FEATURE_LAYER][:, 1:]), dim=-1)


def scene_patch_labels(scene: SceneFrames, tcfg: TeacherTrainConfig) -> Tensor:
    """``[F, P]`` object index each CLIP patch of each frame shows (-1: none), on the vision tower's patch grid."""
    h, w = clip_input_size(*scene.images.shape[-2:], tcfg.vision_image_size, tcfg.vision_patch)
    grid = (h // tcfg.vision_patch, w // tcfg.vision_patch)
    return patch_object_labels(pixel_object_index(scene), grid, tcfg.semantic_dense_min_share).flatten(1)


@torch.no_grad()
def evaluate_semantic(
    model,
    tokenizer,
    scenes: list[SceneFrames],
    tcfg: TeacherTrainConfig,
    dense_head: nn.Module | None = None,
    patch_labels: list[Tensor] | None = None,
) -> dict[str, float]:
    """Image→text accuracy over all names of ``scenes`` and its chance level; with ``dense_head`` and
    ``patch_labels`` (``[F, P]`` per scene) also the patch name / category accuracy (see the module docstring)."""
    names = sorted({n for s in scenes for n in s.object_names})
    text = _encode_text(model, tokenizer, [_caption(n, tokenizer) for n in names], tcfg.text_max_length)
    index = {n: i for i, n in enumerate(names)}
    dense = dense_head is not None and patch_labels is not None
    category = [n.split(" ", 1)[1] for n in names]
    correct, chance, total = 0.0, 0.0, 0
    name_hits, category_hits, patches_seen = 0, 0, 0
    for k, scene in enumerate(scenes):
        vis = visible_objects(scene, tcfg.min_object_fraction) > 0
        keep = vis.any(dim=1)
        if not dense and not bool(keep.any()):
            continue
        # one pass per scene: every frame with the dense head (patch figures), else only the frames that show an object
        images = scene.images if dense else scene.images[keep]
        frames, patches = _encode_images(
            model, clip_pixel_values(images, tcfg.vision_image_size, tcfg.vision_patch), dense_head if dense else None
        )
        if dense:
            frames, labels = frames[keep], patch_labels[k]
            labelled = labels >= 0
            best = (patches[labelled] @ text.T).argmax(-1).tolist()
            truth = [scene.object_names[i] for i in labels[labelled].tolist()]
            name_hits += sum(names[b] == t for b, t in zip(best, truth))
            category_hits += sum(category[b] == t.split(" ", 1)[1] for b, t in zip(best, truth))
            patches_seen += len(truth)
        if not bool(keep.any()):
            continue
        shown = torch.zeros(int(keep.sum()), len(names), dtype=torch.bool)
        for j, name in enumerate(scene.object_names):
            shown[:, index[name]] |= vis[keep, j]
        best = (frames @ text.T).argmax(dim=-1)
        correct += float(shown[torch.arange(best.shape[0]), best].sum())
        chance += float((shown.sum(dim=1).double() / len(names)).sum())
        total += int(best.shape[0])
    out = {"i2t_acc": correct / max(total, 1), "chance": chance / max(total, 1), "frames": float(total)}
    if dense:
        out |= {
            "patch_name_acc": name_hits / max(patches_seen, 1),
            "patch_category_acc": category_hits / max(patches_seen, 1),
            "patches": float(patches_seen),
        }
    return out


def _dense_name_loss(
    model, tokenizer, patches: Tensor, patch_names: list[list[str | None]], scale: Tensor, max_length: int
) -> Tensor:
    """Cross-entropy of each labelled patch ``[N, P, D]`` against the names of the batch's labelled patches."""
    flat = [name for row in patch_names for name in row]
    candidates = sorted({n for n in flat if n is not None})
    if not candidates:
        return patches.sum() * 0.0
    column = {n: i for i, n in enumerate(candidates)}
    keep = torch.tensor([n is not None for n in flat])
    target = torch.tensor([column[n] for n in flat if n is not None])
    text = _encode_text(model, tokenizer, [_caption(n, tokenizer) for n in candidates], max_length)
    logits = scale * patches.flatten(0, 1)[keep] @ text.T
    return F.cross_entropy(logits, target)


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
    dense_head = nn.Linear(tcfg.vision_hidden, tcfg.projection_dim) if tcfg.semantic_dense_weight > 0 else None
    train_labels = [scene_patch_labels(s, tcfg) for s in train_scenes] if dense_head is not None else []
    val_labels = [scene_patch_labels(s, tcfg) for s in val_scenes] if dense_head is not None else None
    trainable = nn.ModuleDict({"clip": model} | ({"dense_head": dense_head} if dense_head is not None else {}))
    frames, captions = [], []
    for k, scene in enumerate(train_scenes):
        vis = visible_objects(scene, tcfg.min_object_fraction)
        for f in torch.nonzero(vis.sum(dim=1) > 0).flatten().tolist():
            frames.append((k, f))
            captions.append(vis[f].numpy())
    if not frames:
        raise ValueError(f"{data_root}: no training frame shows an object (semantic teacher)")
    rng = np.random.default_rng([tcfg.seed, 2])
    model.eval()

    def evaluate() -> dict[str, float]:
        return evaluate_semantic(model, tokenizer, val_scenes, tcfg, dense_head, val_labels)

    untrained = evaluate()
    log(
        f"[semantic teacher] untrained: held-out image→text accuracy {untrained['i2t_acc']:.3f} (chance {untrained['chance']:.3f})"
    )

    def step_loss(_step: int) -> dict[str, Tensor]:
        picks = rng.choice(len(frames), size=min(tcfg.semantic_batch, len(frames)), replace=False)
        images, texts, patch_names = [], [], []
        for i in picks:
            k, f = frames[i]
            scene = train_scenes[k]
            weights = captions[i] / captions[i].sum()
            texts.append(_caption(scene.object_names[rng.choice(len(weights), p=weights)], tokenizer))
            images.append(scene.images[f])
            if dense_head is not None:
                patch_names.append([scene.object_names[j] if j >= 0 else None for j in train_labels[k][f].tolist()])
        pixels = clip_pixel_values(torch.stack(images), tcfg.vision_image_size, tcfg.vision_patch)
        img, patches = _encode_images(model, pixels, dense_head)
        txt = _encode_text(model, tokenizer, texts, tcfg.text_max_length)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img @ txt.T
        # several frames may share a caption: every frame whose caption equals column j is a positive
        same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32)
        targets = same / same.sum(dim=1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-targets * logits.log_softmax(dim=1), dim=1).mean()
            + torch.sum(-targets * logits.T.log_softmax(dim=1), dim=1).mean()
        )
        if dense_head is None:
            return {"loss": loss}
        dense = _dense_name_loss(model, tokenizer, patches, patch_names, scale, tcfg.text_max_length)
        return {"loss": loss + tcfg.semantic_dense_weight * dense, "clip": loss.detach(), "dense": dense.detach()}

    history = train_loop(
        trainable,
        step_loss,
        evaluate,
        max_steps=tcfg.semantic_steps,
        minutes=tcfg.semantic_minutes,
        lr=tcfg.semantic_lr,
        weight_decay=tcfg.semantic_weight_decay,
        warmup=tcfg.semantic_warmup,
        grad_clip=tcfg.grad_clip,
        eval_every=tcfg.eval_every,
        name="semantic",
        log=log,
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
        "final_loss": float(np.mean(history["losses"][-min(20, len(history["losses"])) :])),
        "loss_curve": history["losses"],
        "final_terms": history["final_terms"],
        "held_out": {"untrained": untrained, "trained": final, "history": history["evals"]},
        "config": asdict(tcfg),
    }
    with atomic_write(out_dir / "meta.json", "w") as handle:
        handle.write(json.dumps(meta, indent=1))
    return meta
